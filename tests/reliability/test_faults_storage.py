"""The guardian's database goes away under load and comes back.

- PostgreSQL stopped for `SEALGATE_PG_OUTAGE_S` seconds (6 in `make test`, 30 in `make soak`)
  while calls stream: calls that need it fail fast with a typed error; limits and budgets fail
  closed (no call leaves unmetered); endings of calls already in flight are queued and land
  after recovery; every call that reached the provider is billed exactly once.
- SQLite on a full filesystem (a small tmpfs): clear errors, no corruption, recovery when
  space returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import RPCError
from tests.fakes.providers import FakeAnthropic
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess
from tests.pg import PostgresServer, unavailable_reason
from tests.reliability.faults import config, slow_fake
from tests.security.stackdb import Backend, user_with_token

OUTAGE_S = float(os.environ.get("SEALGATE_PG_OUTAGE_S", "6"))
WORKERS = 6
#: docs/RELIABILITY.md's "faults survived" counts these.
FAULTS_SURVIVED: list[str] = []


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = slow_fake(0.01)
    yield server
    server.stop()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it is stopped and started again."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.fail(f"PostgreSQL tests cannot run: {reason}")
    server = PostgresServer().start()
    yield server
    server.cleanup()


async def connect(guardian: GuardianProcess) -> RPCClient:
    async def channel() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    client = RPCClient(channel, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    client.start()
    assert await client.wait_connected(10)
    return client


async def test_postgresql_outage_under_load(
    own_postgres: PostgresServer, fake: FakeAnthropic
) -> None:
    dsn = own_postgres.create_database("outage")
    backend = Backend("postgresql", own_postgres, dsn)
    guardian = GuardianProcess(config_text=config(fake), env=backend.env).start()
    try:
        token = user_with_token(guardian, "payer", "metered")
        rpc = await connect(guardian)
        params = {
            "caller": {"ip": "10.0.0.9", "user_agent": "load", "credential": token},
            "tool": "llm_complete",
            "prompt": "forty words",
        }
        outcomes: list[tuple[float, str, float]] = []  # (ended at, outcome, seconds)
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    async with rpc.stream("llm.stream", params, timeout=60) as stream:
                        async for _chunk in stream:
                            pass
                    outcome = "ok"
                except RPCError as exc:
                    outcome = exc.code.value
                outcomes.append((time.monotonic(), outcome, time.monotonic() - started))
                if outcome != "ok":
                    await asyncio.sleep(0.05)

        workers = [asyncio.ensure_future(worker()) for _ in range(WORKERS)]
        await asyncio.sleep(3)
        assert [o for o in outcomes if o[1] == "ok"], outcomes
        down_at = time.monotonic()
        await asyncio.to_thread(own_postgres.stop, "fast")
        await asyncio.sleep(1.0)  # calls in flight when it went down may end meanwhile
        sent_while_down = len(fake.requests)
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        reached_during_outage = len(fake.requests) - sent_while_down
        await asyncio.to_thread(own_postgres.start)
        up_at = time.monotonic()
        # back to serving
        deadline = time.monotonic() + 30
        while not [o for o in outcomes if o[0] > up_at and o[1] == "ok"]:
            assert time.monotonic() < deadline, Counter(o[1] for o in outcomes if o[0] > up_at)
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*workers)
        await rpc.close()

        during = [o for o in outcomes if down_at + 1 < o[0] < up_at]
        failed = [o for o in during if o[1] != "ok"]
        assert failed, "no call failed while PostgreSQL was down"
        # fail fast, with a typed error (not a hang until some timeout)
        assert {o[1] for o in failed} <= {"unavailable", "internal"}, Counter(o[1] for o in failed)
        assert "internal" not in {o[1] for o in failed}, Counter(o[1] for o in failed)
        assert max(o[2] for o in failed) < 5, max(o[2] for o in failed)
        # limits and budgets fail closed: nothing left for the provider unmetered
        assert reached_during_outage == 0, reached_during_outage

        # every call that reached the provider is billed exactly once, none lost or doubled
        deadline = time.monotonic() + 30
        while True:
            rows = backend.rows(guardian, "SELECT * FROM {s}usage WHERE principal = 'payer'")
            if len(rows) >= len(fake.requests) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert len(rows) == len(fake.requests), (len(rows), len(fake.requests))
        oks = sum(1 for o in outcomes if o[1] == "ok")
        assert Counter(r["outcome"] for r in rows)["ok"] == oks
        assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
        counter = backend.rows(  # budgets are kept by user id
            guardian,
            "SELECT c.value FROM {s}counters c JOIN {s}users u ON c.key = 'spend:' || u.id"
            " WHERE u.name = 'payer'",
        )
        assert counter[0]["value"] == pytest.approx(sum(r["cost_usd"] for r in rows), abs=1e-9)
        assert guardian.process is not None and guardian.process.poll() is None
        logs = guardian.logs()
        at = logs.find("Traceback")
        assert at < 0, logs[max(0, at - 1500) : at + 3000]
        print(
            f"\npostgresql outage {OUTAGE_S:g} s: {len(outcomes)} calls,"
            f" {len(failed)} refused fast while down, {len(rows)} usage rows, none lost"
        )
        FAULTS_SURVIVED.append(f"PostgreSQL stopped {OUTAGE_S:g} s under load")
    finally:
        guardian.stop()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `path` (root only; skipped elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mode = path.stat().st_mode & 0o7777
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode:o}", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write until the filesystem is full; returns the filler file."""
    filler = directory / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(block)
    return filler


async def test_sqlite_on_a_full_filesystem(fake: FakeAnthropic) -> None:
    guardian = GuardianProcess(config_text=config(fake))
    database_dir = guardian.runtime / "guardian"
    try:
        with small_tmpfs(database_dir, "6m"):
            guardian.start()
            metered = user_with_token(guardian, "payer", "metered")
            free = user_with_token(guardian, "free", "user")
            rpc = await connect(guardian)

            def call_params(token: str) -> dict[str, object]:
                return {
                    "caller": {"ip": "10.0.0.9", "user_agent": "t", "credential": token},
                    "tool": "llm_complete",
                    "prompt": "hi",
                }

            await rpc.call("llm.complete", call_params(free))
            filler = fill(database_dir)
            # The WAL is copied into the file four times a second, and new writes reuse its
            # pages before they need the disk: write until the database refuses (bounded).
            # Every call that goes out meanwhile had its start written.
            for _ in range(300):
                try:
                    await rpc.call("llm.complete", call_params(metered), timeout=30)
                except RPCError as exc:
                    assert exc.code.value == "unavailable" and "database" in exc.message, exc
                    break
            else:
                raise AssertionError("a full disk never made the database refuse a write")
            reached = len(fake.requests)
            errors: list[RPCError] = []
            # a login writes a session and an audit row; a metered call writes a reservation
            for method, params in [
                (
                    "auth.login",
                    {
                        "caller": {"ip": "10.0.0.9", "user_agent": "t"},
                        "username": "free",
                        "password": "a long enough password",
                    },
                ),
                ("llm.complete", call_params(metered)),
            ] * 3:
                started = time.monotonic()
                with pytest.raises(RPCError) as refused:
                    await rpc.call(method, params, timeout=30)
                assert time.monotonic() - started < 10
                errors.append(refused.value)
            assert {e.code.value for e in errors} == {"unavailable"}, errors
            assert all("database" in e.message for e in errors), errors
            assert len(fake.requests) == reached, "a metered call left without its reservation"
            # a call without a budget goes out; its ending waits in the ledger's queue
            for _ in range(3):
                await rpc.call("llm.complete", call_params(free), timeout=30)
            assert guardian.process is not None and guardian.process.poll() is None

            filler.unlink()  # space returns
            deadline = time.monotonic() + 30
            backend = Backend("sqlite")
            while (
                len(backend.rows(guardian, "SELECT * FROM {s}usage WHERE principal = 'free'")) < 4
            ):
                assert time.monotonic() < deadline, guardian.logs()[-3000:]
                await asyncio.sleep(0.2)
            session = await rpc.call(
                "auth.login",
                {
                    "caller": {"ip": "10.0.0.9", "user_agent": "t"},
                    "username": "free",
                    "password": "a long enough password",
                },
            )
            assert session["principal"] == "free"
            await rpc.call("llm.complete", call_params(metered))
            await rpc.close()
            deadline = time.monotonic() + 10
            while len(rows := backend.rows(guardian, "SELECT * FROM {s}usage")) < len(
                fake.requests
            ):
                assert time.monotonic() < deadline, (len(rows), len(fake.requests))
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            rows = backend.rows(guardian, "SELECT * FROM {s}usage")
            assert len(rows) == len(fake.requests), (len(rows), len(fake.requests))
            assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
            with contextlib.closing(sqlite3.connect(database_dir / "guardian.db")) as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert "Traceback" not in guardian.logs(), guardian.logs()[-3000:]
            guardian.stop()
        FAULTS_SURVIVED.append("SQLite on a full filesystem")
    finally:
        guardian.stop()
