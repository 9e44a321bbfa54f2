"""The MCP server and its tools. Every tool that needs the guardian goes through the link.

Tools register only when the guardian reports what they need as active (key gating); the
built-in ones (`health_check`, `list_active_tools`) are always there. When the guardian's
active set changes, `sync_tools` adds and removes tools and MCP clients get
`tools/list_changed`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import Tool, ToolResult

from protocol import __version__
from protocol.errors import RPCError
from sandbox.guardian_link import ActiveNames, GuardianLink

logger = logging.getLogger("sealgate.sandbox.mcp")

ToolFunction = Callable[..., Awaitable[ToolResult]]


def result(data: dict[str, Any], text: str | None = None) -> ToolResult:
    """A tool answer: the text as text content, the whole map as structured content."""
    return ToolResult(
        content=text if text is not None else json.dumps(data, sort_keys=True),
        structured_content=data,
    )


def tool_error(exc: RPCError) -> ToolError:
    return ToolError(f"{exc.code.value}: {exc.message}")


class SealGateTools:
    """Builds the tool functions around one guardian link and keeps them registered."""

    def __init__(self, mcp: FastMCP, link: GuardianLink) -> None:
        self.mcp = mcp
        self.link = link
        self.registered: set[str] = set()

    def builtin(self) -> dict[str, tuple[ToolFunction, str]]:
        return {
            "health_check": (
                self.health_check,
                "Check that SealGate and its guardian answer; returns versions and uptime.",
            ),
            "list_active_tools": (
                self.list_active_tools,
                "List the tools and providers (by name) that are active now.",
            ),
        }

    def sync_tools(self, active: ActiveNames | None = None) -> None:
        """Register what is usable now and remove what no longer is."""
        wanted = self.builtin()
        for name in sorted(set(self.registered) - set(wanted)):
            self.mcp.local_provider.remove_tool(name)
            self.registered.discard(name)
        for name, (function, description) in wanted.items():
            if name not in self.registered:
                self.mcp.add_tool(Tool.from_function(function, name=name, description=description))
                self.registered.add(name)

    # tools -------------------------------------------------------------------------------
    async def health_check(self) -> ToolResult:
        try:
            guardian = await self.link.health(timeout=5.0)
        except RPCError as exc:
            raise tool_error(exc) from None
        data = {"status": "ok", "sandbox_version": __version__, "guardian": guardian}
        return result(data, f"SealGate is healthy; guardian up {guardian.get('uptime_s')} s")

    async def list_active_tools(self) -> ToolResult:
        active = self.link.active
        data = {
            "tools": sorted(self.registered),
            "llm_providers": list(active.llm_providers),
            "search_providers": list(active.search_providers),
            "guardian_connected": self.link.connected,
        }
        return result(data)


def build_mcp(name: str, link: GuardianLink) -> tuple[FastMCP, SealGateTools]:
    mcp = FastMCP(name, version=__version__)
    tools = SealGateTools(mcp, link)
    tools.sync_tools()
    link.on_active_change(tools.sync_tools)
    return mcp, tools
