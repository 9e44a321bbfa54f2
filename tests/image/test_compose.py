"""compose.yaml brought up with podman-compose: SealGate and PostgreSQL on the stack's own
network, secrets as compose secrets (files), the database made by the PostgreSQL image and
migrated by the guardian; a budget spent before a restart of the whole stack (`down`, `up`)
still holds after it. PostgreSQL is a local image built from Debian's packages on the
tests' base (SEALGATE_POSTGRES_IMAGE), and tests/image/compose.test.yaml mounts the fake
providers' code into the SealGate container, where the test starts them on its loopback."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, free_port, make_workdir
from tests.image.conftest import BASE, CONTAINERS_CONF, podman

pytestmark = [pytest.mark.slow, pytest.mark.root]

POSTGRES_IMAGE = os.environ.get("SEALGATE_TEST_POSTGRES", "localhost/sealgate-postgres:bookworm")
GUARDIAN_UID = 10001  # the image's hub-guardian (Dockerfile)
BOOTSTRAP = "compose-bootstrap-token-0123456789abcdef"
BUDGET = 1.0
# the fake reports 12 input and 7 output tokens: 0.012 + 0.7 = 0.712 USD a call; a call's
# maximum (8 output tokens: 0.8, plus its input) fits in the budget once, not twice
CONFIG = f"""
[HUB]
HUB_NAME = "SealGate (compose test)"
[HUB_END]

[LLM_PROVIDER.anthropic]
api = "anthropic"
base_url = "http://127.0.0.1:8900/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "dear-model"
[LLM_PROVIDER.anthropic_END]

[MODEL.dear-model]
provider = "anthropic"
cost_input_per_1m = "1000"
cost_output_per_1m = "100000"
max_output_tokens = "64"
[MODEL.dear-model_END]

[ROLE.capped]
monthly_budget_usd = "{BUDGET}"
[ROLE.capped_END]
"""


@dataclass
class Stack:
    dir: Path
    project: str
    port: int
    image: str

    def compose(self, *args: str, timeout: float = 300) -> str:
        env = {
            **os.environ,
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
            "SEALGATE_IMAGE": self.image,
            "SEALGATE_POSTGRES_IMAGE": POSTGRES_IMAGE,
            "SEALGATE_PORT": str(self.port),
            "SEALGATE_CONFIG": "./pyfun",
            "SEALGATE_SOURCE": str(ROOT),
        }
        files = ["-f", "compose.yaml", "-f", "compose.test.yaml"]
        done = subprocess.run(
            ["podman-compose", "-p", self.project, *files, *args],
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    def ctl(self, *args: str, stdin: str | None = None) -> str:
        flags = ["-i"] if stdin is not None else []
        done = podman(
            "exec",
            *flags,
            self.container("sealgate"),
            "sealgate-ctl",
            *args,
            check=False,
            stdin=stdin,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip()

    def logs(self, service: str) -> str:
        done = podman("logs", self.container(service), check=False)
        return (done.stdout + done.stderr)[-3000:]

    def up(self) -> None:
        """`up -d`, the fakes started in the SealGate container, then healthy."""
        self.compose("up", "-d", "--no-build")
        podman(
            "exec",
            "-d",
            self.container("sealgate"),
            "/opt/sealgate/venv/bin/python",
            "-I",
            "/src/tests/image/fake_service.py",
        )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(
            f"not healthy within {timeout} s:\n{self.logs('sealgate')}\n{self.logs('postgres')}"
        )

    def chat(self, token: str) -> httpx.Response:
        body = {
            "model": "dear-model",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        }
        return httpx.post(
            f"http://127.0.0.1:{self.port}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )


@pytest.fixture
def stack(image: str) -> Iterator[Stack]:
    built = subprocess.run(
        ["bash", str(ROOT / "docker" / "podman.sh"), "postgres"],
        env={**os.environ, "SEALGATE_TEST_BASE": BASE, "SEALGATE_TEST_POSTGRES": POSTGRES_IMAGE},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    work = make_workdir("sealgate-compose-")
    shutil.copy(ROOT / "compose.yaml", work / "compose.yaml")
    shutil.copy(ROOT / "tests" / "image" / "compose.test.yaml", work / "compose.test.yaml")
    password = secrets.token_hex(16)
    (work / "postgres_password.txt").write_text(password + "\n")
    (work / "postgres_password.txt").chmod(0o400)
    env_file = work / "sealgate.env"
    env_file.write_text(
        f"SEALGATE_BOOTSTRAP_TOKEN={BOOTSTRAP}\n"
        f"DATABASE_URL=postgresql://sealgate:{password}@postgres:5432/sealgate\n"
    )
    os.chown(env_file, GUARDIAN_UID, GUARDIAN_UID)
    env_file.chmod(0o400)
    (work / "pyfun").write_text(CONFIG)
    (work / "pyfun").chmod(0o644)
    port = free_port()
    deployed = Stack(work, f"sealgate-test-{port}", port, image)
    try:
        yield deployed
    finally:
        subprocess.run(
            [
                "podman-compose",
                "-p",
                deployed.project,
                "-f",
                "compose.yaml",
                "-f",
                "compose.test.yaml",
                "down",
                "-v",
                "-t",
                "0",
            ],
            cwd=work,
            env={
                **os.environ,
                "CONTAINERS_CONF": str(CONTAINERS_CONF),
                "SEALGATE_SOURCE": str(ROOT),
                "SEALGATE_IMAGE": image,
            },
            capture_output=True,
            timeout=300,
            check=False,
        )
        podman("volume", "rm", "-f", f"{deployed.project}_postgres-data", check=False)
        podman("network", "rm", "-f", f"{deployed.project}_default", check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_compose_migrates_and_a_budget_holds_across_a_restart(stack: Stack) -> None:
    stack.up()
    status = stack.ctl("status")
    assert "postgresql" in status.lower(), status
    # the guardian made its schema in the database the PostgreSQL image created
    tables = podman(
        "exec",
        stack.container("postgres"),
        "psql",
        "-U",
        "sealgate",
        "-d",
        "sealgate",
        "-Atc",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sealgate'",
    ).stdout.split()
    assert {"usage", "reservations", "users"} <= set(tables), tables

    stack.ctl("users", "add", "spender", "--role", "capped", stdin="a long enough password\n")
    token = stack.ctl("tokens", "issue", "--user", "spender")
    first = stack.chat(token)
    assert first.status_code == 200, first.text
    second = stack.chat(token)
    assert second.status_code == 429, second.text
    assert second.json()["error"]["type"] == "insufficient_quota"

    # the whole stack down (containers gone, the database's volume kept) and up again
    stack.compose("down", "-t", "10")
    assert podman("ps", "-a", "--filter", f"name={stack.project}", "-q").stdout.strip() == ""
    stack.up()
    again = stack.chat(token)
    assert again.status_code == 429, again.text
    assert again.json()["error"]["type"] == "insufficient_quota"
    usage = json.loads(stack.ctl("--json", "usage", "report"))
    assert sum(int(row["calls"]) for row in usage["rows"]) >= 1, usage
