"""A web page cannot drive the gateway (DNS rebinding, CSRF), even an open one on loopback.

Attacks, each against the running stack in its default open mode with keys configured:
a rebound Host name, a foreign Origin, a "simple" cross-site POST that needs no preflight,
and a loopback Origin on another port. None may reach a provider.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.world import World

CHAT = {"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]}
ATTACKS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api", {"tool": "llm_complete", "params": {"prompt": "spend"}}),
    ("POST", "/api", {"tool": "db_query", "params": {"sql": "SELECT 1"}}),
    ("POST", "/api", {"tool": "list_active_tools", "params": {}}),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/messages", {**CHAT, "max_tokens": 5}),
    ("POST", "/v1/responses", {"model": "claude-test", "input": "hi"}),
    ("GET", "/v1/models", None),
    ("GET", "/", None),
    ("GET", "/metrics", None),
    ("POST", "/auth/login", {"username": "a", "password": "b"}),
]


def _send(w: World, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.request(method, f"{w.stack.url}{path}", json=body, headers=headers, timeout=10)


def _provider_requests(w: World) -> int:
    return sum(len(fake.requests) for fake in w.fakes)


@pytest.mark.parametrize(("method", "path", "body"), ATTACKS)
def test_a_rebound_host_name_is_refused_with_421(
    w: World, method: str, path: str, body: Any
) -> None:
    host = f"attacker.example:{w.stack.port}"
    response = _send(w, method, path, body, {"host": host, "origin": f"http://{host}"})
    assert response.status_code == 421, response.text
    if path == "/v1/messages":  # Anthropic's error shape: a type, no code
        assert response.json()["error"]["type"] == "invalid_request_error"
    else:
        assert response.json()["error"]["code"] == "misdirected_request"
    assert _provider_requests(w) == 0


@pytest.mark.parametrize(("method", "path", "body"), ATTACKS)
def test_a_foreign_origin_is_refused_with_403(w: World, method: str, path: str, body: Any) -> None:
    response = _send(w, method, path, body, {"origin": "https://evil.example"})
    assert response.status_code == 403, response.text
    assert "allowed_origins" in response.json()["error"]["message"]
    assert _provider_requests(w) == 0


@pytest.mark.parametrize("origin", ["null", "http://localhost:1", "http://127.0.0.1:1"])
def test_loopback_origins_of_other_ports_are_foreign_on_mcp_and_api(w: World, origin: str) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "evil", "version": "1"},
        },
    }
    headers = {"origin": origin, "accept": "application/json, text/event-stream"}
    assert _send(w, "POST", "/mcp", initialize, headers).status_code == 403
    body = {"tool": "llm_complete", "params": {"prompt": "spend"}}
    assert _send(w, "POST", "/api", body, {"origin": origin}).status_code == 403
    assert _provider_requests(w) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
@pytest.mark.parametrize("path", ["/api", "/v1/chat/completions", "/auth/login", "/mcp"])
def test_a_body_not_declared_json_is_refused_with_415(
    w: World, path: str, content_type: str | None
) -> None:
    # What a page can send without a CORS preflight: text/plain, a form, or an untyped Blob.
    body = b'{"tool": "llm_complete", "params": {"prompt": "spend"}}'
    if path == "/v1/chat/completions":
        body = b'{"model": "claude-test", "messages": [{"role": "user", "content": "x"}]}'
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{w.stack.url}{path}", content=body, headers=headers, timeout=10)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]["message"]
    assert _provider_requests(w) == 0


def test_the_gateways_own_origin_and_loopback_names_are_served(w: World) -> None:
    own = w.stack.url
    body = {"tool": "llm_complete", "params": {"prompt": "hello"}}
    response = _send(w, "POST", "/api", body, {"origin": own})
    assert response.status_code == 200, response.text
    response = _send(w, "GET", "/v1/models", None, {"host": f"localhost:{w.stack.port}"})
    assert response.status_code == 200, response.text
    # JSON with parameters and a +json type are JSON too.
    response = httpx.post(
        f"{own}/api",
        content=b'{"tool": "health_check", "params": {}}',
        headers={"content-type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_healthz_is_exempt_for_load_balancers(w: World) -> None:
    response = httpx.get(f"{w.stack.url}/healthz", headers={"host": "10.0.0.7:80"}, timeout=10)
    assert response.status_code == 200
