"""The sandbox's relay methods (guardian/relay.py): each resolves the caller's principal from
the credential first, so a session is only ever served to the principal it was opened for."""

from __future__ import annotations

from guardian.handlers import CallContext, principal_of
from protocol.contract import RelayListenParams, RelayPostParams, RelaySessionParams, Sealed
from protocol.contract_results import Ok, RelaySessionResult
from protocol.errors import Internal


async def session_open(ctx: CallContext, params: Sealed) -> RelaySessionResult:
    principal = await principal_of(ctx, params)
    return RelaySessionResult(session_id=ctx.services.relay.issue(principal.key))


async def session_check(ctx: CallContext, params: RelaySessionParams) -> Ok:
    principal = await principal_of(ctx, params)
    ctx.services.relay.check(params.session_id, principal.key)
    return Ok(ok=True)


async def listen(ctx: CallContext, params: RelayListenParams) -> Ok:
    """Runs until the sandbox cancels it (its stream closed) or the connection ends."""
    if ctx.emit is None:
        raise Internal("relay.listen was dispatched without a stream")
    principal = await principal_of(ctx, params)
    await ctx.services.relay.listen(params.session_id, principal.key, ctx.emit)
    return Ok(ok=True)


async def post(ctx: CallContext, params: RelayPostParams) -> Ok:
    principal = await principal_of(ctx, params)
    await ctx.services.relay.post(params.session_id, principal.key, params.message)
    return Ok(ok=True)
