"""Any replica answers an MCP session: Streamable HTTP session ids the guardian signs, and
legacy SSE messages relayed between replicas through the guardians (guardian/relay.py).

Streamable HTTP: a new session's id comes from the guardian (`relay.session_open`), signed
for the caller's principal. A request carrying an id this sandbox did not open is checked by
the guardian (`relay.session_check`: the deployment's, unexpired, the credential's principal);
then the session is taken up here as an initialized session of the protocol version the
client names, so the client never meets "session not found" behind a load balancer without
affinity. An id that fails the check gets the SDK's own 404. The id authorizes nothing: every
sealed call still carries the caller's credential.

Legacy SSE: the stream (GET /sse) lives in the sandbox that opened it, which holds a
`relay.listen` call for it; a POST for it landing on another replica becomes `relay.post`
there, and the message comes back here as if it had been POSTed here, on the stream's own
request (its credential: the guardian checked that the POST's principal is the stream's).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import anyio
import mcp_types
from anyio.abc import TaskStatus
from fastmcp import FastMCP
from fastmcp.server.http import FastMCPStreamableHTTPSessionManager, StreamableHTTPASGIApp
from mcp.server.auth.middleware.bearer_auth import (
    AuthenticatedUser,
    AuthorizationContext,
    authorization_context,
)
from mcp.server.connection import Connection
from mcp.server.runner import serve_connection
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.transport_context import TransportContext
from mcp_types import DEFAULT_NEGOTIATED_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from protocol.errors import NotFound, RPCError
from sandbox.caller import Proxies, caller_of
from sandbox.guardian_link import (
    GuardianLink,
    relay_listen,
    relay_post,
    relay_session_check,
    relay_session_open,
)
from sandbox.json_response import JSONResponse

logger = logging.getLogger("sealgate.sandbox.replicas")


def _requestor(scope: Scope) -> AuthorizationContext | None:
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


def _unavailable(message: str) -> Response:
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": message}},
        status_code=503,
        headers={"retry-after": "2"},
    )


class ReplicaSessionManager(FastMCPStreamableHTTPSessionManager):
    """The SDK's session manager, with ids signed by the guardian and sessions opened on
    another replica taken up here once the guardian has checked them."""

    def __init__(self, *args: Any, link: GuardianLink, proxies: Proxies, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.link = link
        self.proxies = proxies

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = Headers(scope=scope).get(MCP_SESSION_ID_HEADER)
        caller = caller_of(scope, self.proxies)
        if session_id is None:
            try:
                signed = await relay_session_open(self.link, caller)
            except RPCError as exc:
                await _unavailable(f"no session id: {exc.message}")(scope, receive, send)
                return
            async with self._session_creation_lock:
                transport = self._admit_as(signed, _requestor(scope))
            if transport is None:
                await _unavailable("too many open sessions")(scope, receive, send)
                return
            await self._serve_opening_request(transport, scope, receive, send)
            return
        if session_id not in self._server_instances:
            try:
                await relay_session_check(self.link, caller, session_id[:512])
            except RPCError as exc:  # not found, or invalid: the SDK answers 404 below
                logger.info("a session id was refused: %s", exc.code)
            else:
                version = Headers(scope=scope).get("mcp-protocol-version", "")
                async with self._session_creation_lock:
                    if session_id not in self._server_instances:
                        await self._take_up(session_id, _requestor(scope), version)
        await super()._handle_stateful_request(scope, receive, send)

    def _transport(self, session_id: str) -> StreamableHTTPServerTransport:
        return StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            event_store=self.event_store,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )

    def _admit_as(
        self, session_id: str, requestor: AuthorizationContext | None
    ) -> StreamableHTTPServerTransport | None:
        """The SDK's admission, with the guardian's id instead of a random one."""
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        transport = self._transport(session_id)
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport

    async def _take_up(
        self, session_id: str, requestor: AuthorizationContext | None, version: str
    ) -> None:
        """Serve a session another replica opened, as already initialized."""
        transport = self._admit_as(session_id, requestor)
        if transport is None:
            return  # at the limit: the SDK's 404 follows, and the client starts again
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            version = DEFAULT_NEGOTIATED_VERSION

        async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            async with transport.connect() as (read_stream, write_stream):
                task_status.started()
                try:
                    idle_scope = transport.idle_scope or anyio.CancelScope()
                    with idle_scope:
                        dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
                            read_stream, write_stream, inline_methods=frozenset({"initialize"})
                        )
                        connection = Connection.for_loop(
                            dispatcher, session_id=session_id, protocol_version_hint=version
                        )
                        connection.initialized.set()
                        await serve_connection(
                            self.app,
                            dispatcher,
                            connection=connection,
                            lifespan_state=self._lifespan_state,
                        )
                except Exception:
                    logger.exception("a session taken up from another replica ended badly")
                finally:
                    await self._discard_session(session_id, transport)

        assert self._task_group is not None
        await self._task_group.start(run)
        logger.info("took up a session opened on another replica")


def replica_http_app(
    mcp: FastMCP, link: GuardianLink, proxies: Proxies, **options: Any
) -> Starlette:
    """FastMCP's Streamable HTTP app (its routes and Host/Origin guard) whose session manager
    is `ReplicaSessionManager`; its lifespan does what FastMCP's does with its own."""
    app = mcp.http_app(path="/", **options)
    endpoint = next(
        route.endpoint  # type: ignore[attr-defined]
        for route in app.routes
        if isinstance(getattr(route, "endpoint", None), StreamableHTTPASGIApp)
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        manager = ReplicaSessionManager(
            app=mcp._mcp_server,
            link=link,
            proxies=proxies,
            # the sandbox's RequestGuard and FastMCP's guard check Host and Origin
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        endpoint.session_manager = manager
        async with manager.run():
            try:
                yield
            finally:
                for transport in list(manager._server_instances.values()):
                    with contextlib.suppress(Exception):
                        await transport.terminate()

    app.router.lifespan_context = lifespan
    return app


# legacy SSE --------------------------------------------------------------------------------
class _Watched(dict[UUID, Any]):
    """The SDK's table of open SSE streams, telling us when one opens and closes."""

    def __init__(self, opened: Callable[[UUID], None], closed: Callable[[UUID], None]) -> None:
        super().__init__()
        self._opened = opened
        self._closed = closed

    def __setitem__(self, key: UUID, value: Any) -> None:
        super().__setitem__(key, value)
        self._opened(key)

    def pop(self, key: UUID, *default: Any) -> Any:
        if key in self:
            self._closed(key)
        return super().pop(key, *default)


_OPENING: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "sealgate_sse_opening", default=None
)


class SseRelay:
    """The legacy SSE app, with POSTs for streams held elsewhere relayed through the guardian
    and messages relayed here handed to the stream they are for."""

    def __init__(self, app: Starlette, link: GuardianLink, proxies: Proxies) -> None:
        self.app = app
        self.link = link
        self.proxies = proxies
        self.transport = self._find_transport(app)
        self.transport._read_stream_writers = _Watched(self._opened, self._closed)
        self._holders: dict[UUID, asyncio.Task[None]] = {}

    @staticmethod
    def _find_transport(app: Starlette) -> SseServerTransport:
        for route in app.routes:
            target = getattr(getattr(route, "app", None), "__self__", None)
            if isinstance(target, SseServerTransport):
                return target
        raise RuntimeError("the legacy SSE app has no SseServerTransport")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["method"] == "GET":
            token = _OPENING.set(scope)
            try:
                await self.app(scope, receive, send)
            finally:
                _OPENING.reset(token)
        elif scope["method"] == "POST" and (held := self._elsewhere(scope)) is not None:
            await self._relay(held, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _elsewhere(self, scope: Scope) -> str | None:
        """The session id of a POST for a stream not held here; None for anything the SDK
        answers itself (a stream held here, or no valid id)."""
        query = scope.get("query_string", b"").decode("latin-1")
        values = [p.split("=", 1)[1] for p in query.split("&") if p.startswith("session_id=")]
        if len(values) != 1:
            return None
        try:
            session = UUID(hex=values[0])
        except ValueError:
            return None
        return None if session in self.transport._read_stream_writers else session.hex

    async def _relay(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            mcp_types.jsonrpc_message_adapter.validate_json(bytes(body), by_name=False)
        except ValidationError:
            await Response("Could not parse message", status_code=400)(scope, receive, send)
            return
        try:
            text = bytes(body).decode("utf-8")
            await relay_post(self.link, caller_of(scope, self.proxies), session_id, text)
        except UnicodeDecodeError:
            answer = Response("Could not parse message", status_code=400)
        except NotFound:
            answer = Response("Could not find session", status_code=404)
        except RPCError as exc:
            answer = Response(f"the session's replica is unreachable: {exc.code}", status_code=503)
        else:
            answer = Response("Accepted", status_code=202)
        await answer(scope, receive, send)

    # the streams held here -----------------------------------------------------------------
    def _opened(self, session: UUID) -> None:
        scope = _OPENING.get()
        if scope is None:
            return
        task = asyncio.get_running_loop().create_task(self._hold(session, scope))
        self._holders[session] = task

    def _closed(self, session: UUID) -> None:
        task = self._holders.pop(session, None)
        if task is not None:
            task.cancel()

    async def _hold(self, session: UUID, scope: Scope) -> None:
        """Listen for messages relayed to this stream until it closes."""
        caller = caller_of(scope, self.proxies)
        try:
            async with relay_listen(self.link, caller, session.hex) as stream:
                async for chunk in stream:
                    message = chunk.get("message") if isinstance(chunk, dict) else None
                    if isinstance(message, str):
                        await self._hand_over(session, scope, message.encode())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the guardian went away: POSTs elsewhere get 404/503
            logger.info("an SSE stream is no longer reachable from other replicas: %r", exc)

    async def _hand_over(self, session: UUID, opening: Scope, body: bytes) -> None:
        """A relayed message, as if POSTed here on the stream's own request."""
        headers = [
            (k, v) for k, v in opening.get("headers", []) if k not in (b"content-type", b"accept")
        ]
        headers.append((b"content-type", b"application/json"))
        scope = {
            **opening,
            "method": "POST",
            "headers": headers,
            "query_string": f"session_id={session.hex}".encode(),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await anyio.sleep_forever()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def discard(_message: Any) -> None:
            return None

        await self.transport.handle_post_message(scope, receive, discard)
