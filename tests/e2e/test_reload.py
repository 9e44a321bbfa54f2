"""Hot reload through the real stack: a key added to the env file activates its provider
without a restart, MCP clients hear tools/list_changed on the same session, and a bad file
keeps the old configuration."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.mcp_client import mcp_session
from tests.helpers import ROOT, Stack, gid_of, run_ctl, uid_of


def ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_ctl(stack.runtime / "guardian" / "admin.sock", *args)


def write_env_file(stack: Stack, text: str) -> None:
    path = stack.dir / ".env"
    path.write_text(text)
    path.chmod(0o600)
    guardian_uid = uid_of(stack.pid_of("guardian"))
    guardian_gid = gid_of(stack.pid_of("guardian"))
    os.chown(path, guardian_uid, guardian_gid)


async def test_reload_activates_a_new_key_and_keeps_sessions(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory()
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        seen.append(repr(message))

    async with mcp_session(stack.url, message_handler=on_message) as client:
        before = {t.name for t in (await client.list_tools()).tools}
        assert "llm_complete" not in before
        write_env_file(stack, "ANTHROPIC_API_KEY=fake-ant-added-later-000000000\n")
        reloaded = ctl(stack, "config", "reload")
        assert reloaded.returncode == 0, reloaded.stderr
        assert "llm_complete" in reloaded.stdout
        deadline = time.monotonic() + 10
        while not any("list_changed" in m or "ListChanged" in m for m in seen):
            assert time.monotonic() < deadline, f"no tools/list_changed: {seen}"
            await asyncio.sleep(0.1)
        after = {t.name for t in (await client.list_tools()).tools}  # the same session
        assert {"llm_complete", "code_review"} <= after
        providers = ctl(stack, "providers")
        assert "anthropic" in providers.stdout and "env file" in providers.stdout
        assert "fake-ant" not in providers.stdout

        # a broken file: refused with file:line, the old configuration stays
        good = stack.config.read_text()
        stack.config.write_text(good + "\n[TOOL.broken]\nprovider_type = llm\n")
        refused = ctl(stack, "config", "reload")
        assert refused.returncode == 1
        assert f"{stack.config}:" in refused.stderr and "values must be quoted" in refused.stderr
        still = {t.name for t in (await client.list_tools()).tools}
        assert still == after
        check = ctl(stack, "config", "check", str(stack.config))
        assert check.returncode == 1 and "values must be quoted" in check.stderr

        # SIGHUP to the supervisor does the same as `config reload`
        stack.config.write_text(good)
        assert stack.process is not None
        os.kill(stack.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "SIGHUP: asking the guardian to reload" not in stack.logs():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        while stack.logs().count("configuration reloaded") < 2:
            assert time.monotonic() < deadline, stack.logs()
            await asyncio.sleep(0.1)


def test_status_audit_usage_and_ping(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    status = ctl(stack, "--json", "status")
    assert status.returncode == 0 and '"sandbox_connections": 1' in status.stdout
    assert '"database": "sqlite:' in status.stdout and '"config_sha256"' in status.stdout
    assert ctl(stack, "ping").stdout.startswith("pong")
    assert ctl(stack, "audit", "tail", "--since", "1h").returncode == 0
    assert ctl(stack, "usage", "report", "--by", "model").returncode == 0
    assert ctl(stack, "audit", "tail", "--since", "yesterday").returncode == 2
    checked = ctl(stack, "config", "check", str(ROOT / ".pyfun"))
    assert checked.returncode == 0 and checked.stdout.startswith(str(ROOT))
    assert "would activate: LLM none; search none" in checked.stdout  # this stack has no keys


@pytest.mark.parametrize("args", [("users", "list"), ("providers",)])
def test_cli_says_clearly_when_the_guardian_is_down(
    stack_factory: Callable[..., Stack], args: tuple[str, ...]
) -> None:
    stack = stack_factory()
    assert stack.stop() == 0
    down = ctl(stack, *args)
    assert down.returncode == 3 and "Traceback" not in down.stderr
    assert "guardian" in down.stderr


def test_audit_tail_follows_new_entries(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(env={"SEALGATE_BOOTSTRAP_TOKEN": "bootstrap-follow-test-0123456789"})
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "guardian.ctl",
            "--socket",
            str(stack.runtime / "guardian" / "admin.sock"),
            "audit",
            "tail",
            "-f",
            "--since",
            "1h",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        httpx.post(f"{stack.url}/auth/login", json={"username": "mallory", "password": "x"})
        deadline = time.monotonic() + 10
        assert follower.stdout is not None
        lines = []
        while time.monotonic() < deadline:
            line = follower.stdout.readline()
            lines.append(line)
            if "mallory" in line:
                break
        assert any("mallory" in line and "refused" in line for line in lines), lines
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the CLI as another user")
def test_cli_says_permission_denied_to_other_users(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    from supervise.users import ensure_user

    other = ensure_user("hub-test-other")
    denied = subprocess.run(
        [
            sys.executable,
            "-m",
            "guardian.ctl",
            "--socket",
            str(stack.runtime / "guardian" / "admin.sock"),
            "status",
        ],
        user=other.uid,
        group=other.gid,
        extra_groups=[],
        cwd="/",
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.returncode == 3 and "permission denied" in denied.stderr, denied.stderr
