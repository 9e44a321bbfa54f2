"""Where the sandbox opens its server spans (`sandbox.tracing`): an ASGI middleware for every
HTTP request, and a fastmcp middleware for every MCP tool call.

An HTTP span is named `{method} {route}` with the route as `/metrics` labels it (a fixed
list, never the raw path); a tool call's is `tools/call {tool}`. The HTTP span takes a
`traceparent` header, the tool call's span the `traceparent` of the call's `_meta`, each
only from a trusted client address. MCP tool calls run in the session's task, not the HTTP
request's, so a tool call's span is the root of its own trace unless its client sent one.
"""

from __future__ import annotations

from typing import Any

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.metrics import method_label, route_of
from sandbox.tracing import TRACER, Tracer

SKIPPED_ROUTES = frozenset({"/healthz", "/metrics"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class TracingMiddleware:
    """A server span around each HTTP request (health checks and scrapes aside)."""

    def __init__(self, app: ASGIApp, tracer: Tracer = TRACER) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tracer.enabled:
            await self.app(scope, receive, send)
            return
        route = route_of(scope["path"])
        if route in SKIPPED_ROUTES:
            await self.app(scope, receive, send)
            return
        method = method_label(scope["method"])
        with self.tracer.server_span(
            f"{method} {route}",
            traceparent=_header(scope, b"traceparent"),
            client=_peer(scope),
        ) as span:
            if span is None:
                await self.app(scope, receive, send)
                return
            span.set("http.request.method", method)
            span.set("http.route", route)
            span.set("url.scheme", str(scope.get("scheme", "http")))

            async def observed(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set("http.response.status_code", status)
                    if status >= 500:
                        span.error_type = str(status)
                await send(message)

            await self.app(scope, receive, observed)


class TracingMCP(Middleware):
    """A server span around each MCP tool call."""

    def __init__(self, tracer: Tracer = TRACER) -> None:
        self.tracer = tracer

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        if not self.tracer.enabled:
            return await call_next(context)
        name = str(getattr(context.message, "name", ""))[:64]
        traceparent, client = _mcp_origin()
        with self.tracer.server_span(
            f"tools/call {name}", traceparent=traceparent, client=client
        ) as span:
            if span is not None:
                span.set("mcp.method.name", "tools/call")
                span.set("gen_ai.tool.name", name)
                span.set("gen_ai.operation.name", "execute_tool")
            result = await call_next(context)
            if span is not None:
                structured = getattr(result, "structured_content", None)
                if isinstance(structured, dict) and structured.get("cached") is True:
                    # answered from the sandbox's tool cache: no sealed call beneath
                    span.set("sealgate.cache.hit", True)
                if getattr(result, "is_error", False):
                    span.error_type = "tool_error"
            return result


def _mcp_origin() -> tuple[str | None, str | None]:
    """The tool call's `_meta.traceparent` and its HTTP client's address, if any."""
    from fastmcp.server.dependencies import fastmcp_request_ctx

    request_context = fastmcp_request_ctx.get()
    if request_context is None:
        return None, None
    meta = request_context.meta or {}
    traceparent = meta.get("traceparent")
    request = request_context.request
    client = getattr(request, "client", None)
    return (
        traceparent if isinstance(traceparent, str) else None,
        str(client.host) if client is not None else None,
    )
