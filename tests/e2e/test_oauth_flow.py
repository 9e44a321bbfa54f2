"""OAuth sign-in with the official `mcp` SDK's client provider against a running stack:
discovery from a 401, a client by metadata document (the test-only loopback setting) and one
by Dynamic Client Registration, sign-in and consent, tokens, tools/call, refresh, revocation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.oauth_person import (
    MemoryStorage,
    Person,
    document_for,
    metadata_server,
    oauth_mcp,
    provider_for,
)
from tests.helpers import Stack, run_ctl

PASSWORD = "alice's password"
LOOPBACK_DOCUMENTS = {"SEALGATE_TEST_ONLY_ALLOW_LOOPBACK_CLIENT_METADATA": "1"}


def ctl(stack: Stack, *args: str, stdin: str = "") -> str:
    done = run_ctl(stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    started = stack_factory(env=LOOPBACK_DOCUMENTS)
    ctl(started, "users", "add", "alice", stdin=f"{PASSWORD}\n")
    return started


def test_a_401_names_the_metadata_and_the_metadata_names_the_server(stack: Stack) -> None:
    for path in ("/mcp", "/sse", "/v1/models", "/api"):
        method = httpx.get if path in ("/sse", "/v1/models") else httpx.post
        kwargs = {} if method is httpx.get else {"json": {}}
        answer = method(f"{stack.url}{path}", timeout=10, **kwargs)  # type: ignore[operator]
        assert answer.status_code == 401, (path, answer.text)
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge, path
    challenge = httpx.post(f"{stack.url}/mcp", json={}).headers["www-authenticate"]
    assert f'resource_metadata="{stack.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    resource = httpx.get(f"{stack.url}/.well-known/oauth-protected-resource/mcp").json()
    assert resource["resource"] == stack.url
    assert resource["authorization_servers"] == [stack.url]
    assert {"mcp", "llm", "search", "db_query", "admin"} <= set(resource["scopes_supported"])
    server = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server")
    assert server.headers["access-control-allow-origin"] == "*"
    metadata = server.json()
    assert metadata["issuer"] == stack.url
    assert metadata["client_id_metadata_document_supported"] is True
    assert metadata["registration_endpoint"] == f"{stack.url}/oauth/register"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    # a browser's preflight to the token endpoint from another site is answered
    preflight = httpx.options(
        f"{stack.url}/oauth/token",
        headers={"origin": "https://claude.ai", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_registered_client_signs_in_calls_a_tool_refreshes_and_is_revoked(
    stack: Stack,
) -> None:
    person, storage = Person("alice", PASSWORD), MemoryStorage()
    provider = provider_for(stack.url, person, storage)
    async with oauth_mcp(stack.url, provider) as client:
        result = await client.call_tool("health_check", {})
        assert not result.is_error
    assert storage.client_info is not None and storage.client_info.client_id.startswith("sgc_")
    assert person.saw_consent
    consent_page = person.pages[-1]
    assert "SealGate test client" in consent_page and "127.0.0.1:9" in consent_page
    assert "<code>mcp</code>" in consent_page and "<code>admin</code>" not in consent_page
    assert storage.tokens is not None
    first = storage.tokens

    # refresh: the access token is treated as expired, so the SDK rotates the refresh token
    provider.context.token_expiry_time = time.time() - 1
    async with oauth_mcp(stack.url, provider) as client:
        assert not (await client.call_tool("list_active_tools", {})).is_error
    second = storage.tokens
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    assert len(person.pages) == 2  # no second sign-in

    # revocation (RFC 7009): the access token stops working at once
    bearer = {"authorization": f"Bearer {second.access_token}"}
    assert httpx.get(f"{stack.url}/v1/models", headers=bearer).status_code == 200
    revoked = httpx.post(f"{stack.url}/oauth/revoke", data={"token": second.access_token})
    assert revoked.status_code == 200
    refused = httpx.get(f"{stack.url}/v1/models", headers=bearer)
    assert (
        refused.status_code == 401 and "resource_metadata=" in refused.headers["www-authenticate"]
    )
    # the refresh token of that authorization went with it
    again = httpx.post(
        f"{stack.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": second.refresh_token,
            "client_id": storage.client_info.client_id,
        },
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    audit = ctl(stack, "audit", "tail", "--json")
    actions = {entry["action"] for entry in json.loads(audit)["entries"]}
    assert {"oauth.register", "oauth.consent", "oauth.token", "oauth.refresh"} <= actions
    assert "oauth.revoke" in actions


async def test_metadata_document_client_and_remembered_consent(stack: Stack) -> None:
    with metadata_server() as (base, documents):
        client_id = f"{base}/clients/editor.json"
        documents["/clients/editor.json"] = document_for(client_id)
        person = Person("alice", PASSWORD)
        storage = MemoryStorage()
        provider = provider_for(stack.url, person, storage, metadata_url=client_id)
        async with oauth_mcp(stack.url, provider, mode="auto") as client:
            assert not (await client.call_tool("health_check", {})).is_error
        assert storage.client_info is not None and storage.client_info.client_id == client_id
        assert person.saw_consent and "Metadata document client" in person.pages[-1]

        # the same client again, for the same person: consent is remembered
        returning, kept = Person("alice", PASSWORD), MemoryStorage()
        provider = provider_for(stack.url, returning, kept, metadata_url=client_id)
        async with oauth_mcp(stack.url, provider) as client:
            assert not (await client.call_tool("health_check", {})).is_error
        assert not returning.saw_consent

    clients = json.loads(ctl(stack, "oauth", "clients", "list", "--json"))["clients"]
    assert any(c["client_id"] == client_id and c["kind"] == "cimd" for c in clients)
    grants = json.loads(ctl(stack, "oauth", "grants", "list", "--user", "alice", "--json"))[
        "grants"
    ]
    assert [g["client_id"] for g in grants] == [client_id]
    # an operator takes the consent back: its tokens stop working, the next sign-in asks again
    assert kept.tokens is not None
    bearer = {"authorization": f"Bearer {kept.tokens.access_token}"}
    assert httpx.get(f"{stack.url}/v1/models", headers=bearer).status_code == 200
    ctl(stack, "oauth", "grants", "revoke", "--user", "alice", client_id)
    assert json.loads(ctl(stack, "oauth", "grants", "list", "--json"))["grants"] == []
    # at once: the guardian forgets cached resolutions, and /v1 asks it again
    assert httpx.get(f"{stack.url}/v1/models", headers=bearer).status_code == 401
