"""Drive the official `mcp` client against a running stack."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import jsonschema
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

#: (transport, client mode): the handshake protocol and the stateless revision on /mcp,
#: and the legacy HTTP+SSE transport on /sse.
MODES = [("http", "legacy"), ("http", "auto"), ("sse", "legacy")]


@contextlib.asynccontextmanager
async def mcp_session(
    base_url: str,
    kind: str = "http",
    mode: str = "legacy",
    headers: dict[str, str] | None = None,
    message_handler: Any = None,
) -> AsyncIterator[Client]:
    options: dict[str, Any] = {"mode": mode}
    if message_handler is not None:
        options["message_handler"] = message_handler
    if kind == "sse":
        transport: Any = sse_client(f"{base_url}/sse", headers=headers or {})
        async with Client(transport, **options) as client:
            yield client
        return
    async with httpx2.AsyncClient(headers=headers or {}, timeout=30) as http:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        async with Client(transport, **options) as client:
            yield client


async def call_tool(base_url: str, kind: str, mode: str, name: str, args: dict[str, Any]) -> Any:
    async with mcp_session(base_url, kind, mode) as client:
        return await client.call_tool(name, args)


async def list_tool_names(base_url: str, kind: str, mode: str) -> list[str]:
    async with mcp_session(base_url, kind, mode) as client:
        return sorted(tool.name for tool in (await client.list_tools()).tools)


async def assert_fits_schema(client: Client, name: str, result: Any) -> None:
    """The tool's structured content matches the output schema its listing declares."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    schema = tools[name].output_schema
    assert schema is not None, f"{name} declares no output schema"
    jsonschema.validate(result.structured_content, schema)
