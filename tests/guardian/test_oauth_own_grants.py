"""`oauth.own_grants` and `oauth.own_grant_revoke` on the guardian's sandbox socket: the
answers fit their schemas, whose grants they are comes from the credential alone (a `user`
parameter does not exist), an OAuth access token and open mode are refused, and a form
token works once, for the user it was given to, and never as a consent ticket."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from protocol.adminaddr import open_admin_channel
from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import Forbidden, InvalidParams, NotFound
from protocol.methods import METHODS
from protocol.schema import validate
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess

CALLER = {"ip": "127.0.0.1", "user_agent": "pytest"}
VERIFIER = "v" * 64
REDIRECT = "http://127.0.0.1:9/cb"
PASSWORD = "correct horse battery"


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


async def _consent(sandbox: RPCClient, user: str) -> tuple[str, dict[str, Any]]:
    """`user` allows a new registered client: (its id, the tokens)."""
    registered = await sandbox.call(
        "oauth.register",
        {
            "caller": CALLER,
            "metadata": {"client_name": f"{user}'s app", "redirect_uris": [REDIRECT]},
        },
    )
    client_id = registered["client"]["client_id"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest())
    request = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
        "scope": "mcp llm",
    }
    signed_in = await sandbox.call(
        "oauth.login",
        {"caller": CALLER, "request": request, "username": user, "password": PASSWORD},
    )
    allowed = await sandbox.call(
        "oauth.consent", {"caller": CALLER, "ticket": signed_in["ticket"], "approve": True}
    )
    code = parse_qs(urlsplit(allowed["redirect_to"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": VERIFIER,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
    }
    return client_id, await sandbox.call("oauth.token", {"caller": CALLER, "form": form})


def _as(credential: str) -> dict[str, Any]:
    return {"caller": {**CALLER, "credential": credential}}


async def test_own_grants_are_the_callers_only(clients: tuple[RPCClient, RPCClient]) -> None:
    sandbox, admin = clients
    for name in ("ada", "ben"):
        await admin.call("users.add", {"name": name, "password": PASSWORD})
    adas_client, adas_tokens = await _consent(sandbox, "ada")
    bens_client, _ = await _consent(sandbox, "ben")
    ada = (await sandbox.call("auth.login", {**_as(""), "username": "ada", "password": PASSWORD}))[
        "session"
    ]
    ben = (await sandbox.call("auth.login", {**_as(""), "username": "ben", "password": PASSWORD}))[
        "session"
    ]

    listing = await _call(sandbox, "oauth.own_grants", _as(ada))
    assert listing["user"] == "ada" and listing["form_token"]
    [only] = listing["grants"]
    assert only["client_id"] == adas_client and only["client_name"] == "ada's app"
    assert only["client_kind"] == "registered" and only["scopes"] == ["mcp", "llm"]
    assert "Send prompts" in only["scope_words"][1] and only["last_token_at"] is not None

    # no parameter names a user: the sandbox cannot ask for another's
    with pytest.raises(InvalidParams, match="unknown parameter 'user'"):
        await sandbox.call("oauth.own_grants", {**_as(ada), "user": "ben"})
    # ada's form token, her session, ben's client: not hers to withdraw
    with pytest.raises(NotFound):
        await sandbox.call(
            "oauth.own_grant_revoke",
            {**_as(ada), "client_id": bens_client, "form_token": listing["form_token"]},
        )
    # ada's next form token from ben's session: bound to ada
    again = await sandbox.call("oauth.own_grants", _as(ada))
    with pytest.raises(InvalidParams, match="form expired or was used"):
        await sandbox.call(
            "oauth.own_grant_revoke",
            {**_as(ben), "client_id": bens_client, "form_token": again["form_token"]},
        )
    # a form token is never a consent ticket
    with pytest.raises(InvalidParams):
        await sandbox.call(
            "oauth.consent",
            {"caller": CALLER, "ticket": "own-grants:" + again["form_token"], "approve": True},
        )
    # an OAuth client's token may not look or withdraw
    for method, extra in (
        ("oauth.own_grants", {}),
        ("oauth.own_grant_revoke", {"client_id": adas_client, "form_token": "x"}),
    ):
        with pytest.raises(Forbidden, match="token cannot list or withdraw"):
            await sandbox.call(method, {**_as(adas_tokens["access_token"]), **extra})

    fresh = await sandbox.call("oauth.own_grants", _as(ada))
    done = await _call(
        sandbox,
        "oauth.own_grant_revoke",
        {**_as(ada), "client_id": adas_client, "form_token": fresh["form_token"]},
    )
    assert done == {"revoked": 1, "client_name": "ada's app"}
    assert (await _call(sandbox, "oauth.own_grants", _as(ada)))["grants"] == []
    assert (await admin.call("oauth.grants", {"user": "ben"}))["grants"][0]["client_id"] == (
        bens_client
    )


async def test_open_mode_has_no_own_grants(clients: tuple[RPCClient, RPCClient]) -> None:
    sandbox, _ = clients
    with pytest.raises(Forbidden, match="nobody is signed in"):
        await sandbox.call("oauth.own_grants", {"caller": CALLER})
