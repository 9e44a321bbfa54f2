"""The OAuth methods on the guardian's sockets: each answer fits its declared result schema,
and the methods are the sandbox socket's only (an operator's client is refused them)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from protocol import PROTOCOL_VERSION
from protocol.adminaddr import open_admin_channel
from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import ConnectionLost, InvalidParams
from protocol.methods import METHODS
from protocol.schema import validate
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess

CALLER = {"ip": "127.0.0.1", "user_agent": "pytest"}
VERIFIER = "k" * 64
REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture
async def clients(guardian: GuardianProcess) -> AsyncIterator[tuple[RPCClient, RPCClient]]:
    async def sandbox_socket() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    async def admin_socket() -> SocketChannel:
        return await open_admin_channel(guardian.admin_path)

    sandbox = RPCClient(sandbox_socket, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    admin = RPCClient(admin_socket, client_name="ctl")
    for client in (sandbox, admin):
        client.start()
        assert await client.wait_connected(5)
    yield sandbox, admin
    await sandbox.close()
    await admin.close()


async def _call(client: RPCClient, name: str, params: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await client.call(name, params)
    validate(METHODS[name].result, result)
    return result


async def test_every_oauth_answer_fits_its_schema(clients: tuple[RPCClient, RPCClient]) -> None:
    sandbox, admin = clients
    await admin.call("users.add", {"name": "ada", "password": "correct horse battery"})
    info = await _call(sandbox, "oauth.server_info", {})
    assert info["resource"] == info["issuer"] and "mcp" in info["scopes_supported"]
    registered = await _call(
        sandbox, "oauth.register", {"caller": CALLER, "metadata": {"redirect_uris": [REDIRECT]}}
    )
    client_id = registered["client"]["client_id"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest())
    request = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "state": "s1",
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    view = await _call(sandbox, "oauth.authorize", {"caller": CALLER, "request": request})
    assert view["scopes"] == ["mcp", "llm", "search"] and view["redirect_host"] == "127.0.0.1:9"
    signed_in = await _call(
        sandbox,
        "oauth.login",
        {
            "caller": CALLER,
            "request": request,
            "username": "ada",
            "password": "correct horse battery",
        },
    )
    allowed = await _call(
        sandbox, "oauth.consent", {"caller": CALLER, "ticket": signed_in["ticket"], "approve": True}
    )
    code = parse_qs(urlsplit(allowed["redirect_to"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": VERIFIER,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
    }
    issued = await _call(sandbox, "oauth.token", {"caller": CALLER, "form": form})
    refresh = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    rotated = await _call(
        sandbox, "oauth.token", {"caller": CALLER, "form": {**refresh, "client_id": client_id}}
    )
    verified = await _call(
        sandbox, "auth.verify", {"caller": {**CALLER, "credential": rotated["access_token"]}}
    )
    assert verified["scopes"] == ["mcp", "llm", "search"] and verified["admin"] is False
    await _call(sandbox, "oauth.revoke", {"caller": CALLER, "token": rotated["refresh_token"]})
    clients_listed = await _call(admin, "oauth.clients", {})
    assert [c["client_id"] for c in clients_listed["clients"]] == [client_id]
    grants = await _call(admin, "oauth.grants", {"user": "ada"})
    assert grants["grants"][0]["live_tokens"] == 0  # revoked with its family
    with pytest.raises(InvalidParams, match="used already"):
        await sandbox.call("oauth.token", {"caller": CALLER, "form": form})
    revoked = await _call(admin, "oauth.grants", {"user": "ada", "revoke_client": client_id})
    assert revoked["revoked"] == 1


async def test_the_oauth_server_is_not_on_the_admin_socket(guardian: GuardianProcess) -> None:
    channel = await open_admin_channel(guardian.admin_path)
    try:
        hello = {"protocol_version": PROTOCOL_VERSION, "client": "ctl"}
        channel.send([0, 1, "hello", hello])
        assert (await channel.receive())[0][2] is None
        channel.send([0, 2, "oauth.token", {"caller": CALLER, "form": {"grant_type": "x"}}])
        with pytest.raises(ConnectionLost):
            async with asyncio.timeout(10):
                while True:
                    await channel.receive()
    finally:
        channel.close()
    for _ in range(100):  # the guardian's log line follows the close
        if "sealgate.security" in guardian.logs():
            break
        await asyncio.sleep(0.05)
    assert "oauth.token" in guardian.logs() and "sealgate.security" in guardian.logs()
