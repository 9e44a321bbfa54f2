"""Upstream MCP servers' tools, listed and relayed; the guardian is their only client.

A fastmcp provider: `tools/list` asks the guardian (`mcp.list`, for the current caller) which
upstream tools this caller may see, under their prefixed names; `tools/call` of one of them
is relayed as `mcp.call {server, tool, arguments}`. The sandbox never learns an upstream's
URL, command or credential, and never holds an upstream session: the guardian checks the
caller, the pins and the limits again on every call (docs/UPSTREAM_MCP.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastmcp.server.providers.base import Provider
from fastmcp.tools import Tool, ToolResult
from mcp_types import ContentBlock
from pydantic import Field, TypeAdapter, ValidationError

from protocol.contract import to_map
from protocol.contract_results import decode_result
from protocol.contract_upstream import (
    McpCallParams,
    McpCallResult,
    McpListParams,
    McpListResult,
    UpstreamTool,
)
from protocol.errors import RPCError
from sandbox.errors import SealedToolError
from sandbox.guardian_link import Caller, GuardianLink

logger = logging.getLogger("sealgate.sandbox.mcp")

_BLOCKS: TypeAdapter[list[ContentBlock]] = TypeAdapter(list[ContentBlock])
#: An upstream MCP call: the guardian ends it at its server's `timeout_sec` (3600 s at most).
CALL_TIMEOUT_S = 3600.0 + 30.0


async def mcp_list(link: GuardianLink, caller: Caller) -> McpListResult:
    """The caller's approved upstream tools, by prefixed name."""
    params = to_map(McpListParams(caller=caller.to_params()))
    return decode_result(McpListResult, await link._client.call("mcp.list", params, timeout=30))


async def mcp_call(
    link: GuardianLink, caller: Caller, server: str, tool: str, arguments: dict[str, Any]
) -> McpCallResult:
    """One upstream tool call, relayed: the guardian bounds it by the server's timeout."""
    params = to_map(
        McpCallParams(caller=caller.to_params(), server=server, tool=tool, arguments=arguments)
    )
    answer = await link._client.call("mcp.call", params, timeout=CALL_TIMEOUT_S)
    return decode_result(McpCallResult, answer)


class UpstreamTools(Provider):
    """The caller's approved upstream tools; `reserved` names are SealGate's own."""

    def __init__(
        self,
        link: GuardianLink,
        caller: Callable[[], Caller],
        reserved: Callable[[], set[str]],
        configured: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.link = link
        self.caller = caller
        self.reserved = reserved
        #: Whether `.pyfun` has any `[MCP_SERVER]` block: without one, no RPC is made.
        self.configured = configured

    async def _listed(self) -> list[UpstreamTool]:
        if not self.configured() or not self.link.connected:
            return []
        try:
            answer = await mcp_list(self.link, self.caller())
        except RPCError as exc:
            logger.info("upstream tools not listed: %s", exc.message)
            return []
        own = self.reserved()
        return [tool for tool in answer.tools if tool.name not in own]

    async def _list_tools(self) -> Sequence[Tool]:
        return [self._tool(listed) for listed in await self._listed()]

    async def _get_tool(self, name: str, version: Any = None) -> Tool | None:
        if name in self.reserved():
            return None
        for listed in await self._listed():
            if listed.name == name:
                return self._tool(listed)
        return None

    def _tool(self, listed: UpstreamTool) -> Tool:
        return RelayedTool(
            name=listed.name,
            title=listed.title or None,
            description=listed.description,
            parameters=listed.input_schema,
            output_schema=listed.output_schema or None,
            relay=self,
            server=listed.server,
            upstream=listed.tool,
        )

    async def relay(self, server: str, tool: str, arguments: dict[str, Any]) -> ToolResult:
        try:
            answer = await mcp_call(self.link, self.caller(), server, tool, arguments)
        except RPCError as exc:
            raise SealedToolError.of(exc) from None
        try:
            content = _BLOCKS.validate_python(answer.content)
        except ValidationError:
            raise SealedToolError.of(
                RPCError(f"upstream tool {tool!r} answered content MCP does not define")
            ) from None
        structured = answer.structured_content or None
        return ToolResult(
            content=content or [],
            structured_content=structured if isinstance(structured, dict) else None,
            is_error=answer.is_error,
        )


class RelayedTool(Tool):
    """An upstream tool as this server lists it; running it is one `mcp.call`."""

    relay: Annotated[Any, Field(exclude=True)] = None
    server: Annotated[str, Field(exclude=True)] = ""
    upstream: Annotated[str, Field(exclude=True)] = ""

    async def run(self, arguments: dict[str, Any], context: Any = None) -> ToolResult:
        relay: UpstreamTools = self.relay
        return await relay.relay(self.server, self.upstream, arguments)
