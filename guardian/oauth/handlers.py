"""RPC handlers of the OAuth methods; each re-checks what it relies on and asks the service.

Registered in `guardian/dispatch.py`: the sandbox-socket methods in the sandbox table only,
`oauth.clients` and `oauth.grants` in the operator table only. `oauth.own_grants` and
`oauth.own_grant_revoke` take their typed params and act for the caller's principal only.
"""

from __future__ import annotations

from typing import Any

from guardian.handlers import CallContext, principal_of
from guardian.oauth import own
from guardian.oauth.service import OAuthService
from protocol.contract import OAuthOwnGrantRevokeParams, OAuthOwnGrantsParams


def service_of(ctx: CallContext) -> OAuthService:
    return ctx.services.oauth


def server_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return service_of(ctx).server_info()


async def authorize(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    pending = await service_of(ctx).check(params["request"], params["caller"]["ip"])
    return pending.view()


async def login(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await service_of(ctx).login(
        params["request"], params["username"], params["password"], params["caller"]["ip"]
    )


async def consent(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await service_of(ctx).consent(
        params["ticket"], params["approve"], params["caller"]["ip"]
    )


async def token(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await service_of(ctx).token(params["form"], params["caller"]["ip"])


async def register(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    client = await service_of(ctx).register(params["caller"]["ip"], params["metadata"])
    return {"client": client}


async def revoke(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await service_of(ctx).revoke(params["token"], params.get("client_id"), params["caller"]["ip"])
    return {"ok": True}


async def clients(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await service_of(ctx).clients(params.get("revoke"))


async def grants(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await service_of(ctx).grants(params.get("user"), params.get("revoke_client"))


async def own_grants(ctx: CallContext, params: OAuthOwnGrantsParams) -> dict[str, Any]:
    """The caller's own consents: the principal comes from the credential alone."""
    principal = await principal_of(ctx, params)
    return await own.list_own(service_of(ctx), principal, params.caller.ip)


async def own_grant_revoke(ctx: CallContext, params: OAuthOwnGrantRevokeParams) -> dict[str, Any]:
    principal = await principal_of(ctx, params)
    return await own.revoke_own(
        service_of(ctx), principal, params.client_id, params.form_token, params.caller.ip
    )
