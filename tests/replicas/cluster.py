"""Three replicas (each the real supervisor with its guardian and sandbox) on one PostgreSQL,
behind HAProxy (Debian's) balancing round robin with no affinity: every request may land on
any replica, so a client's session meets all three."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.helpers import Stack, free_port, make_workdir
from tests.pg import PostgresServer

REPLICAS = 3


def haproxy_missing() -> str | None:
    if shutil.which("haproxy") is None:
        return "HAProxy is not installed (tests/setup_machine.sh installs Debian's haproxy)"
    return None


class LoadBalancer:
    """HAProxy in front of `backends` (ports on 127.0.0.1): round robin per request, no
    stickiness, health-checked on /healthz; its stats say which replica served how many."""

    def __init__(self, backends: list[int]) -> None:
        self.dir = make_workdir("sealgate-haproxy-")
        self.port = free_port()
        self.stats_port = free_port()
        self.backends = backends
        self.config = self.dir / "haproxy.cfg"
        self.log = self.dir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None
        servers = "\n".join(
            f"    server r{i} 127.0.0.1:{port} check inter 500ms fall 2 rise 1"
            for i, port in enumerate(backends)
        )
        self.config.write_text(
            f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout tunnel 1h
    retries 0
    # long-lived SSE streams carry small events: send each at once (HAProxy otherwise
    # merges small writes, holding an event back up to ~200 ms)
    option http-no-delay
frontend sealgate
    bind 127.0.0.1:{self.port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz
{servers}
listen stats
    bind 127.0.0.1:{self.stats_port}
    stats enable
    stats uri /stats
"""
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoadBalancer:
        check = subprocess.run(
            ["haproxy", "-c", "-f", str(self.config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_up(len(self.backends))
        return self

    def served(self) -> dict[str, int]:
        """Requests each replica has served so far (HAProxy's `stot` per server)."""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: int(row["stot"] or 0)
            for row in rows
            if row["pxname"] == "replicas" and row["svname"].startswith("r")
        }

    def up(self) -> set[str]:
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]
            for row in rows
            if row["pxname"] == "replicas"
            and row["svname"].startswith("r")
            and row["status"].startswith("UP")
        }

    def wait_up(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                if len(self.up()) >= count:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"HAProxy: fewer than {count} replicas up:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """`REPLICAS` stacks on one database behind one `LoadBalancer`."""

    def __init__(self, database: str, config_text: str, env: Mapping[str, str]) -> None:
        common = {"DATABASE_URL": database, **env}
        self.stacks = [Stack(env=common, config_text=config_text) for _ in range(REPLICAS)]
        self.balancer: LoadBalancer | None = None

    @property
    def url(self) -> str:
        assert self.balancer is not None
        return self.balancer.url

    @property
    def admin(self) -> Path:
        """The first replica's admin socket (any would do: they share the database)."""
        return self.stacks[0].runtime / "guardian" / "admin.sock"

    def start(self) -> Cluster:
        first, *others = self.stacks
        first.start()  # migrations and the bootstrap user once, then the others at once
        for stack in others:
            stack.start(wait=False)
        for stack in others:
            stack.wait_healthy(60)
        self.balancer = LoadBalancer([stack.port for stack in self.stacks]).start()
        return self

    def logs(self) -> str:
        return "\n".join(f"--- replica {i}\n{s.logs()}" for i, s in enumerate(self.stacks))

    def cleanup(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for stack in self.stacks:
            stack.cleanup()


@contextlib.contextmanager
def running_cluster(
    postgres: PostgresServer, config_text: str, env: Mapping[str, str]
) -> Iterator[tuple[Cluster, str]]:
    """A started `Cluster` on a new database (and that database's name), its logs printed
    when the test fails, everything stopped after. Fails, never skips, without HAProxy."""
    reason = haproxy_missing()
    if reason is not None:
        pytest.fail(reason)
    name = "t_" + uuid.uuid4().hex[:12]
    cluster = Cluster(postgres.create_database(name), config_text, env)
    try:
        yield cluster.start(), name
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.cleanup()
