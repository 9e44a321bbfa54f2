"""Through a real stack: an OAuth token without the `search` scope asks for `web_search` and
is told the token lacks the scope, not that its role may not (issue 24, item 7)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.providers import FakeBrave
from tests.helpers import Stack, run_ctl
from tests.security.test_oauth import (
    PASSWORD,
    exchange,
    pkce,
    redirect_query,
    request_params,
    sign_in,
)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    brave = FakeBrave(name="brave").start()
    config = f"""
[SEARCH_PROVIDER.brave]
api            = "brave"
base_url       = "{brave.base}/res/v1/web/search"
allow_insecure = "true"
requires_key   = "false"
[SEARCH_PROVIDER.brave_END]
"""
    started = Stack(config_text=config)
    try:
        started.start()
        added = run_ctl(
            started.runtime / "guardian" / "admin.sock",
            "users",
            "add",
            "bob",
            stdin=f"{PASSWORD}\n",
        )
        assert added.returncode == 0, added.stderr
        yield started
    finally:
        started.stop()
        started.cleanup()
        brave.stop()


def access_token(stack: Stack, scope: str) -> str:
    registered = httpx.post(
        f"{stack.url}/oauth/register",
        json={
            "client_name": "scope test",
            "redirect_uris": [request_params("x", "y")["redirect_uri"]],
        },
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    verifier, challenge = pkce()
    query = redirect_query(sign_in(stack, request_params(client_id, challenge, scope=scope)))
    answer = exchange(stack, client_id, query["code"], verifier)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def search(stack: Stack, token: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/api",
        json={"tool": "web_search", "params": {"query": "sealgate", "max_results": 1}},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_a_token_without_the_search_scope_is_told_so(stack: Stack) -> None:
    refused = search(stack, access_token(stack, "mcp llm"))
    assert refused.status_code == 403, refused.text
    message = refused.json()["error"]["message"]
    assert "this OAuth token lacks the 'search' scope that tool 'web_search' needs" in message
    assert "sign in again and allow 'search'" in message and "role" not in message
    allowed = search(stack, access_token(stack, "mcp search"))
    assert allowed.status_code == 200, allowed.text


def test_the_llm_scope_covers_the_anthropic_messages_route(stack: Stack) -> None:
    """Issue 27, item 4: `/v1/messages` is under `/v1`, whose scope is `llm`; a token without
    it is refused in Anthropic's shape, whichever header carries it."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    url = f"{stack.url}/v1/messages/count_tokens"
    without = access_token(stack, "mcp")
    for headers in ({"authorization": f"Bearer {without}"}, {"x-api-key": without}):
        refused = httpx.post(url, json=body, headers=headers, timeout=30)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == "error"
        assert refused.json()["error"]["type"] == "permission_error"
        assert "llm" in refused.json()["error"]["message"]
    with_llm = access_token(stack, "llm")
    for headers in ({"authorization": f"Bearer {with_llm}"}, {"x-api-key": with_llm}):
        counted = httpx.post(url, json=body, headers=headers, timeout=30)
        # past the gate: the guardian's own answer (this stack has no LLM provider to count)
        assert counted.status_code == 404, counted.text
        assert counted.json()["error"]["type"] == "not_found_error"
