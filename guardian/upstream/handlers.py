"""The RPC handlers of the upstream MCP methods (`guardian.dispatch` lists them)."""

from __future__ import annotations

from typing import Any

from guardian.handlers import CallContext, _audited, principal_of
from guardian.identity.principal import Principal
from protocol.contract import NoParams
from protocol.contract_results import decode_result, to_wire
from protocol.contract_upstream import (
    McpApproveParams,
    McpApproveResult,
    McpCallParams,
    McpCallResult,
    McpDiffResult,
    McpListParams,
    McpListResult,
    McpServerParams,
    McpServersResult,
)


def _open_loopback(ctx: CallContext) -> bool:
    """Development auto-approval is honoured only in open mode on loopback."""
    accounts = ctx.services.accounts
    return ctx.listens_on_loopback and not accounts.enabled and accounts.open_possible()


async def mcp_list(ctx: CallContext, params: McpListParams) -> McpListResult:
    principal = await principal_of(ctx, params)
    return await ctx.services.upstreams.list_for(principal, _open_loopback(ctx))


async def mcp_call(ctx: CallContext, params: McpCallParams) -> McpCallResult:
    service = ctx.services.upstreams

    async def run(principal: Principal) -> dict[str, Any]:
        return to_wire(await service.call(principal, params, _open_loopback(ctx)))

    return decode_result(McpCallResult, await _audited(ctx, params, "mcp.call", run))


async def mcp_servers(ctx: CallContext, params: NoParams) -> McpServersResult:
    return await ctx.services.upstreams.servers()


async def mcp_diff(ctx: CallContext, params: McpServerParams) -> McpDiffResult:
    return await ctx.services.upstreams.diff(params.name)


async def mcp_approve(ctx: CallContext, params: McpApproveParams) -> McpApproveResult:
    expect = params.expect if isinstance(params.expect, str) else None
    return await ctx.services.upstreams.approve(params.name, expect)
