"""An MCP session belongs to the principal that opened it; anyone else gets 404.

The attack: a second user posts to the first user's legacy SSE `session_id` (it travels in a
URL, so it leaks into logs and proxies). That used to answer 202: the result landed on the
first user's stream and the call was billed to the second.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import httpx
import pytest

from tests.helpers import ROOT, Stack, run_ctl

BOOTSTRAP = "sg_mcp-sessions-bootstrap-0123456789"
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}


def ctl(stack: Stack, *args: str, stdin: str = "") -> str:
    done = run_ctl(stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
    done.check_returncode()
    return done.stdout.strip()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(
        env={"SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP}, config_text=(ROOT / ".pyfun").read_text()
    )


def _open_sse(url: str, token: str) -> tuple[str, threading.Event]:
    """Open a legacy SSE stream as `token`; return its message path and a stop event."""
    found: dict[str, str] = {}
    ready, stop = threading.Event(), threading.Event()

    def run() -> None:
        headers = {"authorization": f"Bearer {token}"}
        with httpx.stream("GET", f"{url}/sse", headers=headers, timeout=30) as response:
            for line in response.iter_lines():
                match = re.match(r"data: (/sse/messages/\?session_id=\w+)", line)
                if match:
                    found["path"] = match.group(1)
                    ready.set()
                if stop.is_set():
                    return

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(15), "no endpoint event"
    return found["path"], stop


def test_another_user_cannot_post_to_a_legacy_sse_session(stack: Stack) -> None:
    ctl(stack, "users", "add", "alice", stdin="alice's password\n")
    ctl(stack, "users", "add", "mallory", stdin="mallory's password\n")
    alice = ctl(stack, "tokens", "issue", "--user", "alice")
    mallory = ctl(stack, "tokens", "issue", "--user", "mallory")
    path, stop = _open_sse(stack.url, alice)
    try:
        stolen = httpx.post(
            f"{stack.url}{path}",
            json=CALL,
            headers={"authorization": f"Bearer {mallory}"},
            timeout=10,
        )
        assert stolen.status_code == 404, stolen.text
        own = httpx.post(
            f"{stack.url}{path}",
            json=CALL,
            headers={"authorization": f"Bearer {alice}"},
            timeout=10,
        )
        assert own.status_code == 202, own.text
    finally:
        stop.set()


def test_another_user_cannot_use_a_streamable_http_session(stack: Stack) -> None:
    ctl(stack, "users", "add", "bob", stdin="bob's password\n")
    ctl(stack, "users", "add", "eve", stdin="eve's password\n")
    bob = ctl(stack, "tokens", "issue", "--user", "bob")
    eve = ctl(stack, "tokens", "issue", "--user", "eve")
    accept = {"accept": "application/json, text/event-stream"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    opened = httpx.post(
        f"{stack.url}/mcp",
        json=initialize,
        headers={**accept, "authorization": f"Bearer {bob}"},
        timeout=10,
    )
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    headers = {**accept, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    stolen = httpx.post(
        f"{stack.url}/mcp", json=CALL, headers={**headers, "authorization": f"Bearer {eve}"}
    )
    assert stolen.status_code == 404, stolen.text
