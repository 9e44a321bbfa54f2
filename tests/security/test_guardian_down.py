"""While the guardian is unreachable, the sandbox serves nothing but `/healthz`.

The attack: kill the guardian (or wait for a restart) and use the seconds before the
sandbox notices. The auth gate used to fail open then: the status page and
`list_active_tools` were served without a credential, on a stale decision.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import GuardianProcess
from tests.security.split import SandboxProcess, orphaned_sandbox

ROUTES = [
    ("GET", "/", None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/messages", {"model": "m", "max_tokens": 5, "messages": []}),
    ("POST", "/v1/messages/count_tokens", {"model": "m", "messages": []}),
    ("POST", "/v1/responses", {"model": "m", "input": "hi"}),
    ("GET", "/metrics", None),
    ("POST", "/api", {"tool": "list_active_tools", "params": {}}),
    ("POST", "/api", {"tool": "health_check", "params": {}}),
    ("POST", "/auth/login", {"username": "a", "password": "b"}),
]


@pytest.fixture
def orphaned() -> Iterator[SandboxProcess]:
    """A linked sandbox whose guardian was then killed and is never restarted."""
    with orphaned_sandbox() as sandbox:
        yield sandbox


def test_every_route_but_healthz_answers_503_at_once(orphaned: SandboxProcess) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{orphaned.url}/healthz", timeout=5).status_code != 503:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    health = httpx.get(f"{orphaned.url}/healthz", timeout=5).json()
    assert health["status"] == "unavailable" and health["guardian"]
    for method, path, body in ROUTES:
        started = time.monotonic()
        response = httpx.request(method, f"{orphaned.url}{path}", json=body, timeout=10)
        assert response.status_code == 503, (path, response.text)
        if path.startswith("/v1/messages"):  # Anthropic's error shape there
            assert response.json()["error"]["type"] == "overloaded_error", response.text
        else:
            assert response.json()["error"]["code"] == "unavailable"
        assert response.headers["retry-after"]
        assert time.monotonic() - started < 2  # at once, not after a call timeout


def test_a_sandbox_serves_at_once_without_a_guardian() -> None:
    guardian = GuardianProcess()  # configured, never started
    started = time.monotonic()
    sandbox = SandboxProcess(guardian).start()
    try:
        while True:
            try:
                response = httpx.get(f"{sandbox.url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                # It used to hold start-up 10 s for a guardian (accepting, not answering).
                assert time.monotonic() - started < 8, sandbox.logs()
                time.sleep(0.05)
        assert response.status_code == 503
        started = time.monotonic()
        tools = httpx.post(
            f"{sandbox.url}/api", json={"tool": "list_active_tools", "params": {}}, timeout=10
        )
        assert tools.status_code == 503 and time.monotonic() - started < 2
    finally:
        sandbox.stop()
        guardian.stop()
