"""Plain ASGI middleware of the sandbox."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


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
