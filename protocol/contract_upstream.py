"""The params and results of the upstream MCP methods (docs/UPSTREAM_MCP.md).

`mcp.list` and `mcp.call` are sealed calls of the sandbox: it names a configured server and
one of its tools, never a URL, a command or a header; the guardian alone reaches the upstream
with the credential its configuration names. `mcp.servers`, `mcp.approve` and `mcp.diff` are
the operator's (the admin socket).
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, UnsetType

from protocol.contract import Params, Sealed
from protocol.contract_results import Number, Result

#: An upstream tool's name, or a server's (the `[MCP_SERVER.name]` characters).
ToolName = Annotated[str, Meta(max_length=128, pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
ServerName = Annotated[str, Meta(max_length=128, pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
#: Arguments of one tool call: a JSON object, bounded in keys (its size by the frame).
Arguments = Annotated[dict[str, Any], Meta(max_length=1024)]


class McpListParams(Sealed, frozen=True, kw_only=True):
    """The caller's upstream tools: only those its role and token may use, and only those
    whose definition an operator approved."""


class McpCallParams(Sealed, frozen=True, kw_only=True):
    server: ServerName
    tool: ToolName
    arguments: Arguments | UnsetType | None = UNSET


class UpstreamTool(Result, frozen=True, kw_only=True):
    """One approved upstream tool as the sandbox lists it (`name` is prefixed)."""

    name: str
    server: str
    tool: str
    description: str
    input_schema: dict[str, Any]
    title: str | UnsetType = UNSET
    output_schema: dict[str, Any] | UnsetType = UNSET


class McpListResult(Result, frozen=True, kw_only=True):
    tools: list[UpstreamTool]
    #: Servers that could not be reached now (their tools are left out): names only.
    unavailable: list[str]


class McpCallResult(Result, frozen=True, kw_only=True):
    """The upstream's `CallToolResult`, redacted: content blocks as MCP sends them."""

    content: list[dict[str, Any]]
    is_error: bool
    latency_ms: Number
    structured_content: dict[str, Any] | UnsetType = UNSET


# operators ---------------------------------------------------------------------------------
#: SHA-256 of a server's whole listing as `mcp.diff` showed it (lower-case hex).
ListingDigest = Annotated[str, Meta(pattern="^[0-9a-f]{64}$")]


class McpServerParams(Params, frozen=True, kw_only=True):
    name: ServerName


class McpApproveParams(McpServerParams, frozen=True, kw_only=True):
    #: Approve only if the server still lists exactly what this `mcp.diff` digest covers.
    expect: ListingDigest | UnsetType | None = UNSET


class McpServersResult(Result, frozen=True, kw_only=True):
    #: Per server: transport, state, tool counts (served, waiting for approval), the last
    #: error (redacted), calls and latency per tool.
    servers: list[dict[str, Any]]


class McpDiffResult(Result, frozen=True, kw_only=True):
    server: str
    #: SHA-256 of the listing compared: `mcp.approve` with `expect` pins only this listing.
    listing: str
    #: Per tool whose definition differs from its pin (or has none): {"tool", "change":
    #: "new" | "changed" | "removed", "approved": {...} | None, "now": {...} | None}.
    changes: list[dict[str, Any]]


class McpApproveResult(Result, frozen=True, kw_only=True):
    server: str
    approved: list[str]
    removed: list[str]
