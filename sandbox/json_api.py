"""`POST /api`: the original hub's JSON API. `{"tool": "<name>", "params": {...}}` ->
`{"result": "<answer text>", "meta": {...}}` for LLM and search tools (as the original
answered, SealGate's details beside it), `{"result": {...}}` for the built-in tools, or
`{"error": {"code", "message"}}` with a fitting status.

Every registered MCP tool is callable this way, through the same function the MCP server
runs, so both surfaces answer alike.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.http import set_http_request
from starlette.requests import Request
from starlette.responses import Response

from protocol.contract_http import ToolCall, decode_body
from protocol.errors import ErrorCode, InvalidParams
from sandbox.errors import SealedToolError, http_status
from sandbox.hub_compat import api_answer, drop_empty, drop_unused_generic
from sandbox.json_response import JSONResponse
from sandbox.mcp_tools import SealGateTools
from sandbox.tool_args import InvalidArguments, names_problem, validated


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def refusal(exc: SealedToolError) -> JSONResponse:
    """A tool's typed refusal; a rate limit says when to come back, as `/v1` does."""
    headers = None
    if exc.code is ErrorCode.RATE_LIMITED:
        headers = {"retry-after": str(exc.data.get("retry_after_s", 60))}
    return error(http_status(exc.code), exc.code.value, exc.message, headers)


class _NoProgress:
    """Stands in for an MCP Context: the JSON API has nobody to report progress to (so no
    call is streamed from the guardian for it)."""

    request_context = None

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        return None


async def api(request: Request) -> Response:
    tools: SealGateTools = request.app.state.tools
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nesting past what json parses
        return error(400, "invalid_params", "the request body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("tool"), str):
        return error(400, "invalid_params", 'send {"tool": "<name>", "params": {...}}')
    unexpected = sorted(set(body) - set(ToolCall.__struct_fields__))
    if unexpected:
        return error(400, "invalid_params", f"unknown field(s): {', '.join(unexpected)}")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        return error(400, "invalid_params", "params must be an object")
    try:  # from here on, only the checked values are read
        call = decode_body(ToolCall, {"tool": body["tool"], "params": params})
    except InvalidParams as exc:
        return error(400, "invalid_params", exc.message)
    tool = call.tool
    function = tools.functions.get(tool)
    if function is None:
        return error(404, "not_found", f"no active tool {tool!r}; see list_active_tools")
    signature = inspect.signature(function)
    # the original's clients send "" for "the default"
    params = drop_empty(call.params if isinstance(call.params, dict) else {})
    params = drop_unused_generic(tool, params, signature.parameters)
    problem = names_problem(tool, function, params)
    if problem is not None:
        return error(400, "invalid_params", problem)
    try:
        arguments = validated(tool, function, params)  # the checked values are the used
    except InvalidArguments as exc:
        return error(400, "invalid_params", str(exc))
    extra: dict[str, Any] = {"ctx": _NoProgress()} if "ctx" in signature.parameters else {}
    with set_http_request(request):
        try:
            result = await function(**arguments, **extra)
        except SealedToolError as exc:  # the typed code, never parsed back out of the text
            return refusal(exc)
        except ToolError as exc:
            return error(500, "internal", str(exc))
    data = result.structured_content or {}
    text = None
    if tool in tools.text_tools:
        text = "".join(getattr(block, "text", "") for block in result.content)
    return JSONResponse(api_answer(data, text))
