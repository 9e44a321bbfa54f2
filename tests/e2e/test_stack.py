"""The whole stack under the real supervisor, driven by the official MCP client."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.mcp_client import MODES, call_tool, list_tool_names
from tests.helpers import FAKE_SECRET, Stack

MASTER_KEY = base64.b64encode(b"m" * 32).decode()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(env={"ANTHROPIC_API_KEY": FAKE_SECRET, "SEALGATE_MASTER_KEY": MASTER_KEY})


@pytest.mark.parametrize(("kind", "mode"), MODES)
async def test_mcp_clients_list_tools_and_call_health_check(
    stack: Stack, kind: str, mode: str
) -> None:
    assert {"health_check", "list_active_tools"} <= set(
        await list_tool_names(stack.url, kind, mode)
    )
    result = await call_tool(stack.url, kind, mode, "health_check", {})
    assert not result.is_error
    guardian = result.structured_content["guardian"]
    assert guardian["status"] == "ok" and guardian["uptime_s"] > 0
    assert guardian["pid"] == stack.pid_of("guardian")  # the answer really came from the guardian
    active = await call_tool(stack.url, kind, mode, "list_active_tools", {})
    assert active.structured_content["llm_providers"] == ["anthropic"]


async def test_post_to_bare_mcp_path_is_served_not_redirected(stack: Stack) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"accept": "application/json, text/event-stream"}
    response = httpx.post(f"{stack.url}/mcp", json=body, headers=headers, follow_redirects=False)
    assert response.status_code == 200


async def test_a_foreign_origin_is_refused_on_mcp_endpoints(stack: Stack) -> None:
    headers = {"origin": "https://evil.example", "accept": "application/json, text/event-stream"}
    assert httpx.post(f"{stack.url}/mcp/", json={}, headers=headers).status_code == 403
    assert httpx.get(f"{stack.url}/sse/", headers=headers).status_code == 403


def test_status_page_and_healthz(stack: Stack) -> None:
    page = httpx.get(f"{stack.url}/")
    assert page.status_code == 200 and "anthropic" in page.text and "health_check" in page.text
    health = httpx.get(f"{stack.url}/healthz").json()
    assert health["status"] == "ok"


async def test_the_secret_appears_nowhere_the_sandbox_reaches(stack: Stack) -> None:
    responses = [
        httpx.get(f"{stack.url}/").text,
        httpx.get(f"{stack.url}/healthz").text,
        json.dumps((await call_tool(stack.url, "http", "legacy", "health_check", {})).model_dump()),
        json.dumps(
            (await call_tool(stack.url, "http", "legacy", "list_active_tools", {})).model_dump()
        ),
    ]
    sandbox = stack.pid_of("sandbox")
    environ = Path(f"/proc/{sandbox}/environ").read_bytes().decode(errors="replace")
    assert "HUB_CONFIG=" in environ  # we did read the right process
    assert FAKE_SECRET not in environ
    assert "ANTHROPIC_API_KEY" not in environ
    assert MASTER_KEY not in environ and "SEALGATE_MASTER_KEY" not in environ
    for text in responses:
        assert FAKE_SECRET not in text
    assert stack.stop() == 0
    assert FAKE_SECRET not in stack.logs() and MASTER_KEY not in stack.logs()
    for path in stack.runtime.rglob("*"):
        if path.is_file():
            assert FAKE_SECRET.encode() not in path.read_bytes(), path


def _wait_for_new_pid(stack: Stack, name: str, old: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = stack.pid_of(name)
        except AssertionError:
            pid = old
        if pid != old:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{name} was not restarted within {timeout} s:\n{stack.logs()}")


async def test_killed_sandbox_is_back_within_ten_seconds(stack: Stack) -> None:
    old = stack.pid_of("sandbox")
    started = time.monotonic()
    os.kill(old, signal.SIGKILL)
    _wait_for_new_pid(stack, "sandbox", old, 10)
    stack.wait_healthy(timeout=10 - (time.monotonic() - started))
    result = await call_tool(stack.url, "http", "legacy", "health_check", {})
    assert not result.is_error
    assert "sandbox exited with signal 9" in stack.logs()


async def test_killed_guardian_restarts_and_the_sandbox_reconnects(stack: Stack) -> None:
    assert stack.process is not None
    sandbox = stack.pid_of("sandbox")
    old = stack.pid_of("guardian")
    # Freeze the supervisor so the gap lasts until we have looked at it.
    os.kill(stack.process.pid, signal.SIGSTOP)
    try:
        os.kill(old, signal.SIGKILL)
        time.sleep(0.2)
        started = time.monotonic()
        # Nothing but /healthz is served while the guardian is away, and at once.
        for method, path in (("POST", "/mcp"), ("GET", "/v1/models"), ("GET", "/")):
            gap = httpx.request(method, f"{stack.url}{path}", json={}, timeout=5)
            assert gap.status_code == 503, (path, gap.text)
            assert "guardian is unreachable" in gap.json()["error"]["message"]
        health = httpx.get(f"{stack.url}/healthz", timeout=5)
        assert health.status_code == 503
        assert "guardian unavailable" in health.json()["guardian"]
        assert time.monotonic() - started < 5  # a clear error, not a hang
    finally:
        os.kill(stack.process.pid, signal.SIGCONT)
    new = _wait_for_new_pid(stack, "guardian", old, 10)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(Exception):  # 503 until the sandbox has reconnected
            result = await call_tool(stack.url, "http", "legacy", "health_check", {})
            if not result.is_error:
                break
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.1)
    assert result.structured_content["guardian"]["pid"] == new
    assert stack.pid_of("sandbox") == sandbox  # the sandbox was not restarted
    assert "guardian exited with signal 9" in stack.logs()


def test_sigterm_stops_both_children_cleanly_within_ten_seconds(stack: Stack) -> None:
    children = [stack.pid_of("guardian"), stack.pid_of("sandbox")]
    started = time.monotonic()
    assert stack.stop(timeout=10) == 0
    assert time.monotonic() - started < 10
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert "supervisor exiting with status 0" in stack.logs()
