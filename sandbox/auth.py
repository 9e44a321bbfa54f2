"""HTTP authentication in the sandbox: answer 401 early, log in and out.

Every route except `/healthz`, `/openapi.json`, `POST /auth/login` and the status page's login
form needs a credential the guardian accepts. The gate asks the guardian (`auth.verify`) and keeps a
positive answer for `CACHE_S` seconds, so a revoked token stops working within that time;
the guardian resolves the credential again on every sealed call regardless.
"""

from __future__ import annotations

import functools
import hashlib
import time
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from protocol.contract_results import to_wire
from protocol.errors import RPCError, Unauthenticated, Unavailable
from sandbox.caller import SESSION_COOKIE, Proxies, caller_of, client_address
from sandbox.errors import http_status
from sandbox.guardian_link import Caller, GuardianLink
from sandbox.json_response import JSONResponse
from sandbox.oauth import PUBLIC_PATHS as OAUTH_PUBLIC_PATHS

CACHE_S = 5.0
#: Served even while the guardian is unreachable (it says why).
ALWAYS_SERVED = frozenset({"/healthz", "/openapi.json"})
#: Served without a credential while the guardian answers.
PUBLIC_PATHS = frozenset({"/auth/login"})
#: Paths that serve a reduced page instead of a 401 (the status page shows a login form,
#: the grants page says to sign in there).
SOFT_PATHS = frozenset({"/", "/oauth/grants"})


#: Added to a 401 on a Hugging Face Space when no X-API-Key was sent: a private Space's gate
#: takes `Authorization` for the person's Hugging Face token, so SealGate's goes elsewhere.
SPACE_ADVICE = (
    " On a private Hugging Face Space, Authorization carries your Hugging Face token (the"
    " Space's own gate): send the SealGate token as X-API-Key: sg_... instead."
)


def advised(exc: Unauthenticated, scope: Scope, space_host: str | None) -> Unauthenticated:
    """`exc`, with the X-API-Key advice on a Space when the caller did not use that header."""
    if not space_host or Headers(scope=scope).get("x-api-key"):
        return exc
    return Unauthenticated(exc.message.rstrip(".") + "." + SPACE_ADVICE, exc.data)


def error_response(exc: RPCError) -> JSONResponse:
    status = http_status(exc.code.value)
    headers = {"www-authenticate": 'Bearer realm="sealgate"'} if status == 401 else None
    return JSONResponse(
        {"error": {"code": exc.code.value, "message": exc.message}},
        status_code=status,
        headers=headers,
    )


class VerifyCache:
    """Positive `auth.verify` answers by a hash of (credential, IP, User-Agent)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self.auth_enabled_until = 0.0  # while in the future, a missing credential is a 401

    @staticmethod
    def key(caller: Caller) -> str:
        raw = f"{caller.credential or ''}\0{caller.ip}\0{caller.user_agent}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def get(self, caller: Caller) -> dict[str, Any] | None:
        entry = self._entries.get(self.key(caller))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def forget(self, caller: Caller) -> None:
        self._entries.pop(self.key(caller), None)

    def put(self, caller: Caller, principal: dict[str, Any]) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[self.key(caller)] = (time.monotonic() + CACHE_S, principal)
        if principal.get("auth_enabled"):
            self.auth_enabled_until = time.monotonic() + CACHE_S


async def verify(link: GuardianLink, cache: VerifyCache, caller: Caller) -> dict[str, Any]:
    """The principal for `caller`; raises `Unauthenticated` or `Unavailable`."""
    if caller.credential is None and cache.auth_enabled_until > time.monotonic():
        raise Unauthenticated(
            "a credential is required: send Authorization: Bearer <token>, or log in at /auth/login"
        )
    cached = cache.get(caller)
    if cached is not None:
        return cached
    # the request state keeps the principal as the map the guardian sent (pages, middleware
    # and tools read it there)
    principal = to_wire(await link.auth_verify(caller))
    cache.put(caller, principal)
    return principal


class AuthGate:
    """Plain ASGI middleware: sets scope["state"]["principal"] or answers 401 / 503.

    While the guardian is unreachable nothing but `/healthz` is served: every decision needs
    it, and a cached one may be stale (a revoked token, a first user just added).
    """

    def __init__(
        self,
        app: ASGIApp,
        link: GuardianLink,
        proxies: Proxies,
        cache: VerifyCache,
        space_host: str | None = None,
    ) -> None:
        self.app = app
        self.link = link
        self.proxies = proxies
        self.cache = cache
        self.space_host = space_host  # a Hugging Face Space's: its 401s advise X-API-Key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ALWAYS_SERVED:
            await self.app(scope, receive, send)
            return
        if not self.link.connected:
            await unavailable(self.link)(scope, receive, send)
            return
        if scope["path"] in PUBLIC_PATHS or scope["path"] in OAUTH_PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        caller = caller_of(scope, self.proxies)
        state = scope.setdefault("state", {})
        try:
            principal = await verify(self.link, self.cache, caller)
        except Unavailable:
            await unavailable(self.link)(scope, receive, send)
            return
        except Unauthenticated as exc:
            if scope["path"] in SOFT_PATHS and scope["method"] == "GET":
                state["principal"] = None
                state["login_required"] = True
                await self.app(scope, receive, send)
            else:
                await error_response(advised(exc, scope, self.space_host))(scope, receive, send)
            return
        state["principal"] = principal
        # The MCP SDK binds each session (Streamable HTTP and legacy SSE) to the user that
        # opened it and answers 404 to anyone else; this is the identity it compares.
        scope["user"] = session_owner(str(principal.get("principal", "")))
        await self.app(scope, receive, send)


@functools.lru_cache(maxsize=4096)
def session_owner(name: str) -> AuthenticatedUser:
    """The identity the SDK compares, built once per principal (it is only read), not per
    request."""
    return AuthenticatedUser(AccessToken(token="", client_id="sealgate", scopes=[], subject=name))


def unavailable(link: GuardianLink) -> JSONResponse:
    message = f"the guardian is unreachable ({link.last_error}); try again shortly"
    return JSONResponse(
        {"error": {"code": "unavailable", "message": message}},
        status_code=503,
        headers={"retry-after": "2"},
    )


async def login(request: Request) -> Response:
    """`POST /auth/login` with JSON {"username", "password"}: sets the session cookie."""
    link: GuardianLink = request.app.state.link
    proxies: Proxies = request.app.state.proxies
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nesting past what json parses
        body = None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("username"), str)
        or not isinstance(body.get("password"), str)
    ):
        return JSONResponse(
            {
                "error": {
                    "code": "invalid_params",
                    "message": 'send JSON {"username": "...", "password": "..."}',
                }
            },
            400,
        )
    caller = caller_of(request.scope, proxies)
    try:
        session = await link.auth_login(caller, body["username"][:64], body["password"][:1024])
    except RPCError as exc:
        return error_response(exc)
    _, scheme = client_address(request.scope, proxies)
    response = JSONResponse({"principal": session.principal, "expires_at": session.expires_at})
    response.set_cookie(
        SESSION_COOKIE,
        session.session,
        httponly=True,
        samesite="strict",
        secure=scheme == "https",
        path="/",
        max_age=max(0, int(session.expires_at - time.time())),
    )
    return response


async def logout(request: Request) -> Response:
    link: GuardianLink = request.app.state.link
    caller = caller_of(request.scope, request.app.state.proxies)
    request.app.state.verify_cache.forget(caller)
    if caller.credential is not None:
        try:
            await link.auth_logout(caller)
        except RPCError as exc:
            if exc.code.value != "invalid_params":
                return error_response(exc)
    response = JSONResponse({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
