"""Plain ASGI middleware of the sandbox."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_type(start: Message) -> bytes:
    """An `http.response.start`'s content-type ('' when it has none), found without
    building a map of every header, on every answer."""
    for name, value in start.get("headers") or ():
        if name == b"content-type":
            return bytes(value)
    return b""


class MountRootSlash:
    """Serve `/mcp` and `/sse` themselves instead of redirecting to `/mcp/` and `/sse/`.

    Starlette answers a request for a mount's bare path with a 307; the official MCP client
    follows it, but other clients and many proxies do not re-send a POST body.
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            path = scope["path"] + "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)


class BodyLimit:
    """Caps request bodies (413) and how long a client may take to send one (408).

    The body is never buffered here: bytes are counted as the application reads them, so an
    oversized upload is refused as soon as it crosses the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or ():
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await refuse(send, 413, f"the request body is over {self.max_bytes} bytes")
                return
        received = 0
        body_done = False
        started = False
        # One deadline for the whole body, not per chunk: a byte every few seconds must not
        # hold a connection (and a login attempt) open for ever.
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _Refused(
                    408, f"the request body took longer than {self.timeout_s:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _Refused(413, f"the request body is over {self.max_bytes} bytes")
                body_done = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _Refused as refused:
            if not started:
                await refuse(send, refused.status, refused.message)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_CODES = {413: "payload_too_large", 408: "request_timeout", 429: "rate_limited"}


async def refuse(send: Send, status: int, message: str, code: str | None = None) -> None:
    """A JSON error answered before (or instead of) the application; the connection closes."""
    code = code or _CODES.get(status, "invalid_params")
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class StreamCap:
    """At most `limit` open event streams per principal (or client address in open mode)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.open: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_stream(scope):
            await self.app(scope, receive, send)
            return
        principal = (scope.get("state") or {}).get("principal")
        client = scope.get("client") or ("", 0)
        user = isinstance(principal, dict) and principal.get("kind") == "user"
        shown = str(principal["principal"]) if user and principal else f"ip:{client[0]}"
        # a user is counted by id: a new user of an old name starts with none open
        key = str(principal.get("user_id") or shown) if user and principal else shown
        if self.open.get(key, 0) >= self.limit:
            await refuse(send, 429, f"more than {self.limit} open streams for {shown}")
            return
        self.open[key] = self.open.get(key, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open[key] -= 1
            if not self.open[key]:
                del self.open[key]


def _may_stream(scope: Scope) -> bool:
    path, method = scope["path"], scope["method"]
    if method == "GET" and path.startswith(("/sse", "/mcp")):
        return True
    return method == "POST" and path == "/v1/chat/completions"


class OneResponse:
    """Drops a second response on a connection that already answered.

    The MCP SDK's legacy SSE handler returns a `Response` after its event stream has ended
    (a known fastmcp/mcp behaviour); the server then sees `http.response.start` in state
    RESPONSE and logs an ERROR with a long traceback for every client that disconnects.
    Nothing can reach that client any more, so the late response is discarded quietly.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        discarding = False

        async def send_once(message: Message) -> None:
            nonlocal started, discarding
            if message["type"] == "http.response.start":
                if started:
                    discarding = True
                    return
                started = True
            elif discarding and message["type"] == "http.response.body":
                return
            await send(message)

        await self.app(scope, receive, send_once)
