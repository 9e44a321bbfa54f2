"""OAuth 2.1 for remote MCP clients: the resource server's and authorization server's HTTP side.

The guardian decides everything (`guardian/oauth`); these endpoints parse what arrives, ask
it over RPC, and answer in OAuth's shapes:

    GET  /.well-known/oauth-protected-resource[/mcp|/sse|/v1|/api]   RFC 9728
    GET  /.well-known/oauth-authorization-server                      RFC 8414
    GET  /oauth/authorize        the sign-in page (who asks, where the code goes, scopes)
    POST /oauth/authorize        sign in; a remembered consent redirects at once
    POST /oauth/consent          allow or deny; redirects back to the client
    POST /oauth/token            authorization_code and refresh_token grants
    POST /oauth/register         Dynamic Client Registration (RFC 7591)
    POST /oauth/revoke           RFC 7009
    GET  /oauth/grants           a signed-in person's own consents (`sandbox/grants_page.py`)
    POST /oauth/grants/revoke    withdraw one (Origin rule and a single-use form token)

The authorization page uses no cookie: a client sends the person here from another site,
and `sg_session` is `SameSite=Strict`, so it would not arrive anyway. The person signs in on
the page each time a client asks; with no ambient credential, a forged navigation can never
produce a code. Consent is remembered per user and client, so signing in is all it takes
the second time.
"""

from __future__ import annotations

import html
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.contract_results import ConsentView, OAuthServerInfoResult, to_wire
from protocol.errors import RPCError, Unavailable
from sandbox.caller import Proxies, client_address
from sandbox.guardian_link import Caller, GuardianLink
from sandbox.json_response import JSONResponse

WELL_KNOWN_PR = "/.well-known/oauth-protected-resource"
WELL_KNOWN_AS = "/.well-known/oauth-authorization-server"
#: The surfaces a token opens, and the scope each needs beyond a valid token.
PATH_SCOPES = {"/mcp": "mcp", "/sse": "mcp", "/api": "mcp", "/v1": "llm"}
#: What a 401 asks a client to request (never admin or db_query unasked).
CHALLENGE_SCOPE = "mcp llm search"
#: Reached cross-site by browsers and native clients: no Origin check, CORS for all origins.
CROSS_SITE_PATHS = frozenset(
    {
        WELL_KNOWN_AS,
        WELL_KNOWN_PR,
        *(WELL_KNOWN_PR + p for p in PATH_SCOPES),
        "/oauth/token",
        "/oauth/register",
        "/oauth/revoke",
    }
)
#: Served without a credential (the authorization pages sign the person in themselves).
PUBLIC_PATHS = CROSS_SITE_PATHS | {"/oauth/authorize", "/oauth/consent"}
#: A signed-in person's own consents: the page, and its withdraw form (same-origin only).
GRANTS_PATH = "/oauth/grants"
GRANTS_REVOKE_PATH = "/oauth/grants/revoke"
#: Bodies OAuth sends as forms (RFC 6749 and 7009), allowed besides JSON.
FORM_PATHS = frozenset(
    {"/oauth/authorize", "/oauth/consent", "/oauth/token", "/oauth/revoke", GRANTS_REVOKE_PATH}
)
_REQUEST_KEYS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
_TOKEN_KEYS = (
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "resource",
)
INFO_TTL_S = 30.0
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_PAGE_HEADERS = {
    **_NO_STORE,
    # no framing (clickjacking a consent button), no script. The referrer stays on this origin
    # (the authorization query never leaves it): with "no-referrer" browsers send
    # `Origin: null` on the pages' own form posts, which the request guard refuses.
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline';"
    " frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


class ServerInfo:
    """The guardian's resource identifier and scopes, kept `INFO_TTL_S` seconds."""

    def __init__(self, link: GuardianLink) -> None:
        self.link = link
        self._value: OAuthServerInfoResult | None = None
        self._until = 0.0

    async def get(self) -> OAuthServerInfoResult:
        if self._value is None or self._until <= time.monotonic():
            self._value = await self.link.oauth_server_info()
            self._until = time.monotonic() + INFO_TTL_S
        return self._value

    async def resource_metadata_url(self, path: str) -> str:
        resource = (await self.get()).resource
        suffix = next((p for p in PATH_SCOPES if path == p or path.startswith(p + "/")), "")
        return f"{resource}{WELL_KNOWN_PR}{suffix}"


def protected_path(path: str) -> str | None:
    """The surface (`/mcp`, `/sse`, `/v1`, `/api`) a path belongs to, if any."""
    return next((p for p in PATH_SCOPES if path == p or path.startswith(p + "/")), None)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def bearer_challenge(info: ServerInfo, path: str, error: str | None = None) -> str:
    """The WWW-Authenticate value of a 401 (or of a 403 with `error`) on a protected path."""
    parts = []
    if error is not None:
        parts.append(f'error="{error}"')
    scope = PATH_SCOPES.get(protected_path(path) or "", "") if error else CHALLENGE_SCOPE
    parts.append(f'scope="{scope}"')
    parts.append(f'resource_metadata="{_quoted(await info.resource_metadata_url(path))}"')
    return "Bearer " + ", ".join(parts)


class BearerChallenge:
    """Plain ASGI middleware: every 401 on `/mcp`, `/sse`, `/v1` and `/api` carries
    `WWW-Authenticate: Bearer resource_metadata=...` (RFC 9728 section 5.1), whichever layer
    produced it (the gate, a sealed call refused later, the OpenAI error shape)."""

    def __init__(self, app: ASGIApp, info: ServerInfo) -> None:
        self.app = app
        self.info = info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or protected_path(scope["path"]) is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_challenge(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                try:
                    value = await bearer_challenge(self.info, path)
                except RPCError:
                    value = 'Bearer realm="sealgate"'
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"www-authenticate"
                ]
                headers.append((b"www-authenticate", value.encode("latin-1", "replace")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_challenge)


class OAuthCORS:
    """Plain ASGI middleware for the cross-site OAuth endpoints: preflights answered, every
    answer readable from any origin. No credentials are involved (no cookies are read there),
    so `*` is what the specifications expect."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CROSS_SITE_PATHS:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            response = Response(
                status_code=204,
                headers={
                    "access-control-allow-origin": "*",
                    "access-control-allow-methods": "GET, POST, OPTIONS",
                    "access-control-allow-headers": "authorization, content-type,"
                    " mcp-protocol-version",
                    "access-control-max-age": "600",
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-origin", b"*"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


# helpers ---------------------------------------------------------------------------------
def _caller(request: Request) -> Caller:
    """Who is asking, without any credential: OAuth endpoints carry their own."""
    proxies: Proxies = request.app.state.proxies
    ip, _ = client_address(request.scope, proxies)
    return Caller(ip=ip, user_agent=request.headers.get("user-agent", ""))


def _link(request: Request) -> GuardianLink:
    link: GuardianLink = request.app.state.link
    return link


def _info(request: Request) -> ServerInfo:
    info: ServerInfo = request.app.state.oauth_info
    return info


def oauth_json_error(exc: RPCError) -> JSONResponse:
    """An RPC refusal in RFC 6749 section 5.2's shape."""
    code = exc.data.get("oauth_error") if exc.data else None
    if not isinstance(code, str):
        code = {
            "invalid_params": "invalid_request",
            "rate_limited": "slow_down",
            "unauthenticated": "invalid_client",
        }.get(exc.code.value, "server_error")
    status = 401 if code == "invalid_client" else 400
    if code in ("server_error", "slow_down"):
        status = 503 if isinstance(exc, Unavailable) else 429 if code == "slow_down" else 500
    return JSONResponse(
        {"error": code, "error_description": exc.message}, status_code=status, headers=_NO_STORE
    )


async def form_of(request: Request) -> dict[str, str] | None:
    """A url-encoded form as single string values; None when it is not one."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return None
    form = await request.form(max_files=0, max_fields=32)
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


# metadata --------------------------------------------------------------------------------
async def protected_resource(request: Request) -> Response:
    try:
        info = await _info(request).get()
    except RPCError as exc:
        return oauth_json_error(exc)
    return JSONResponse(
        {
            "resource": info.resource,
            "authorization_servers": [info.issuer],
            "scopes_supported": info.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": request.app.state.hub_name,
        },
        headers={"cache-control": "max-age=300"},
    )


def authorization_server_metadata(info: OAuthServerInfoResult) -> dict[str, Any]:
    issuer = info.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "registration_endpoint": f"{issuer}/oauth/register",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "scopes_supported": info.scopes_supported,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
    }


async def authorization_server(request: Request) -> Response:
    try:
        info = await _info(request).get()
    except RPCError as exc:
        return oauth_json_error(exc)
    return JSONResponse(
        authorization_server_metadata(info), headers={"cache-control": "max-age=300"}
    )


# the authorization pages -----------------------------------------------------------------
def _authorization_request(request: Request) -> dict[str, str]:
    query = request.query_params
    return {k: query[k] for k in _REQUEST_KEYS if k in query and len(query[k]) <= 4096}


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin:.6rem 0}input[type=text],input[type=password]{width:100%}"
    ".err{color:#a00}li{margin:.4rem 0}button{margin:.5rem .5rem 0 0;padding:.4rem 1rem;"
    "font:inherit;border-radius:.3rem;cursor:pointer}"
    "button.primary{background:#1a5fb4;color:#fff;border:2px solid #1a5fb4;font-weight:600}"
    "button.secondary{background:#fff;color:#333;border:2px solid #888}"
    ".unverified{background:#fff3cd;color:#5c4400;padding:.1rem .4rem;border-radius:.2rem;"
    "font-size:.9em}.note{color:#555;font-size:.9em}.done{background:#e6f4ea;padding:.5rem}"
    "code{overflow-wrap:anywhere}"
    "table{border-collapse:collapse;width:100%}td,th{padding:.3rem .6rem .3rem 0;"
    "text-align:left;vertical-align:top;border-bottom:1px solid #ddd}"
)


def page(title: str, body: str, status: int = 200, extra_style: str = "") -> HTMLResponse:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}{extra_style}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=_PAGE_HEADERS)


def _error_page(message: str, status: int = 400) -> HTMLResponse:
    return page(
        "Sign-in refused",
        "<h1>This sign-in cannot continue</h1>"
        f"<p class=err id=error>{html.escape(message)}</p>"
        "<p>Close this window and check the application that sent you here.</p>",
        status,
    )


def unverified_note(kind: str, client_id: str, *, signing_in: bool = True) -> str:
    """Why a client's name proves nothing: every client names itself (a registered one in
    its registration, a metadata-document one in the document at its URL)."""
    if kind == "cimd":
        return (
            "the application named itself in its own description at"
            f" <code>{html.escape(client_id)}</code>; SealGate has not checked the name."
        )
    advice = (
        " Go on only if you started this sign-in from the application you expect."
        if signing_in
        else ""
    )
    return (
        "the application chose this name itself when it registered; SealGate has not"
        f" checked it.{advice}"
    )


def client_label(name: str, kind: str, client_id: str) -> str:
    """A client's name on the grants page, marked as unverified with the reason beside it."""
    return (
        f"<strong class=client-name>{html.escape(name)}</strong>"
        " <span class=unverified>unverified name</span>"
        f"<br><span class=note>{unverified_note(kind, client_id, signing_in=False)}</span>"
    )


def scope_items(names: list[Any], words: list[Any]) -> str:
    """One list item per scope: what it opens in words, then its name."""
    if len(words) != len(names):
        words = [""] * len(names)
    return "".join(
        f"<li>{html.escape(str(w)) or html.escape(str(n))} <code>{html.escape(str(n))}</code></li>"
        for n, w in zip(names, words, strict=True)
    )


def _who_asks(view: ConsentView) -> str:
    words = view.scope_words if isinstance(view.scope_words, list) else []
    scopes = scope_items(list(view.scopes), list(words))
    name, client_id = view.client_name, view.client_id
    kind = view.client_kind if isinstance(view.client_kind, str) else "registered"
    return (
        f"<p><strong id=client>{html.escape(name)}</strong>"
        f" <span class=unverified id=unverified>unverified name</span>"
        f" (<code>{html.escape(client_id)}</code>) asks to use"
        f" <code>{html.escape(view.resource)}</code> on your behalf.</p>"
        f"<p class=note id=unverified-why>Unverified: {unverified_note(kind, client_id)}</p>"
        f"<p>After you allow it you go back to <strong id=redirect-host>"
        f"{html.escape(view.redirect_host)}</strong>.</p>"
        f"<p>If you allow it, it may:</p><ul id=scopes>{scopes}</ul>"
    )


def _login_page(view: ConsentView, problem: str = "", status: int = 200) -> HTMLResponse:
    error = f"<p class=err id=error>{html.escape(problem)}</p>" if problem else ""
    return page(
        "Sign in",
        f"<h1>Sign in to allow an application</h1>{_who_asks(view)}{error}"
        "<form method=post>"
        "<label>User name <input type=text name=username autocomplete=username required></label>"
        "<label>Password <input type=password name=password autocomplete=current-password"
        " required></label><button type=submit class=primary>Sign in</button></form>",
        status,
    )


def _consent_page(ticket_value: str, view: ConsentView) -> HTMLResponse:
    ticket = html.escape(ticket_value)
    return page(
        "Allow access",
        f"<h1>Allow access?</h1>{_who_asks(view)}"
        "<form method=post action=/oauth/consent>"
        f"<input type=hidden name=ticket value='{ticket}'>"
        "<button type=submit name=approve value=yes class=primary id=allow>Allow</button>"
        "<button type=submit name=approve value=no class=secondary id=deny>Deny</button></form>"
        "<p class=note>You can withdraw it at any time on"
        " <a href=/oauth/grants>your grants page</a>.</p>",
    )


def _redirect_of(exc: RPCError) -> str | None:
    target = exc.data.get("redirect_to") if exc.data else None
    return target if isinstance(target, str) else None


async def authorize_page(request: Request) -> Response:
    """GET: check the request with the guardian, then show the sign-in form."""
    try:
        view = await _link(request).oauth_authorize(
            _caller(request), _authorization_request(request)
        )
    except RPCError as exc:
        target = _redirect_of(exc)
        if target is not None:
            return RedirectResponse(target, status_code=303, headers=_NO_STORE)
        return _error_page(exc.message, _page_status(exc))
    return _login_page(view)


def _page_status(exc: RPCError) -> int:
    if isinstance(exc, Unavailable):
        return 503
    return 429 if exc.code.value == "rate_limited" else 400


async def authorize_submit(request: Request) -> Response:
    """POST: the sign-in form. Redirects (consent remembered, or a refusal the client must
    hear) or shows the consent page."""
    form = await form_of(request)
    if form is None:
        return _error_page("send the sign-in form")
    link, caller, authz = _link(request), _caller(request), _authorization_request(request)
    username, password = form.get("username", "")[:64], form.get("password", "")[:1024]
    try:
        result = await link.oauth_login(caller, authz, username, password)
    except RPCError as exc:
        target = _redirect_of(exc)
        if target is not None:
            return RedirectResponse(target, status_code=303, headers=_NO_STORE)
        if exc.code.value in ("unauthenticated", "rate_limited"):
            try:
                view = await link.oauth_authorize(caller, authz)
            except RPCError as again:
                return _error_page(again.message)
            return _login_page(view, exc.message, 401 if exc.code.value != "rate_limited" else 429)
        return _error_page(exc.message)
    if isinstance(result.redirect_to, str):
        return RedirectResponse(result.redirect_to, status_code=303, headers=_NO_STORE)
    ticket, view = result.consent()
    return _consent_page(ticket, view)


async def consent(request: Request) -> Response:
    form = await form_of(request)
    if form is None or not form.get("ticket"):
        return _error_page("send the consent form")
    approve = form.get("approve") == "yes"
    try:
        result = await _link(request).oauth_consent(_caller(request), form["ticket"][:128], approve)
    except RPCError as exc:
        target = _redirect_of(exc)
        if target is not None:
            return RedirectResponse(target, status_code=303, headers=_NO_STORE)
        return _error_page(exc.message)
    return RedirectResponse(result.redirect_to, status_code=303, headers=_NO_STORE)


# the machine endpoints -------------------------------------------------------------------
async def token(request: Request) -> Response:
    form = await form_of(request)
    if form is None:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "send a url-encoded form"},
            status_code=400,
            headers=_NO_STORE,
        )
    fields = {k: form[k][:4096] for k in _TOKEN_KEYS if form.get(k)}
    if "grant_type" not in fields:
        fields["grant_type"] = ""
    try:
        result = await _link(request).oauth_token(_caller(request), fields)
    except RPCError as exc:
        return oauth_json_error(exc)
    return JSONResponse(to_wire(result), headers=_NO_STORE)


#: Client metadata is flat (strings, lists, a JWK set); the guardian checks the same.
METADATA_DEPTH = 6


def _too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` levels (walked level by level, no recursion:
    a deep document must not reach the RPC encoder, which would refuse it with a 500)."""
    layer: list[Any] = [value]
    for _ in range(limit):
        layer = (
            [
                child
                for item in layer
                for child in (item.values() if isinstance(item, dict) else item)
                if isinstance(child, dict | list)
            ]
            if layer
            else []
        )
        if not layer:
            return False
    return True


async def register(request: Request) -> Response:
    try:
        metadata = await request.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        metadata = None
    if not isinstance(metadata, dict):
        return JSONResponse(
            {"error": "invalid_client_metadata", "error_description": "send a JSON object"},
            status_code=400,
        )
    if _too_deep(metadata, METADATA_DEPTH):
        return JSONResponse(
            {
                "error": "invalid_client_metadata",
                "error_description": f"client metadata nests deeper than {METADATA_DEPTH} levels",
            },
            status_code=400,
        )
    try:
        result = await _link(request).oauth_register(_caller(request), metadata)
    except RPCError as exc:
        return oauth_json_error(exc)
    return JSONResponse(result.client, status_code=201, headers=_NO_STORE)


async def revoke(request: Request) -> Response:
    form = await form_of(request)
    if form is None or not form.get("token"):
        return JSONResponse(
            {"error": "invalid_request", "error_description": "send token= in a form"},
            status_code=400,
        )
    try:
        await _link(request).oauth_revoke(
            _caller(request),
            form["token"][:512],
            form.get("token_type_hint", "")[:32] or None,
            form.get("client_id", "")[:2048] or None,
        )
    except RPCError as exc:
        return oauth_json_error(exc)
    return Response(status_code=200, headers=_NO_STORE)


ROUTES = [
    Route(WELL_KNOWN_PR, protected_resource, methods=["GET"]),
    *(Route(WELL_KNOWN_PR + p, protected_resource, methods=["GET"]) for p in PATH_SCOPES),
    Route(WELL_KNOWN_AS, authorization_server, methods=["GET"]),
    Route("/oauth/authorize", authorize_page, methods=["GET"]),
    Route("/oauth/authorize", authorize_submit, methods=["POST"]),
    Route("/oauth/consent", consent, methods=["POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/register", register, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
]


class ScopeCheck:
    """Plain ASGI middleware after the gate: a principal holding an OAuth token may use a
    surface only with the scope it needs; otherwise 403 `insufficient_scope` naming it
    (RFC 6750 section 3.1), so the client can ask the person for more. The guardian still
    checks every tool against the token's scopes."""

    def __init__(self, app: ASGIApp, info: ServerInfo) -> None:
        self.app = app
        self.info = info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        surface = protected_path(scope["path"]) if scope["type"] == "http" else None
        principal = scope.get("state", {}).get("principal") if surface else None
        granted = principal.get("scopes") if isinstance(principal, dict) else None
        if surface is None or granted is None or PATH_SCOPES[surface] in granted:
            await self.app(scope, receive, send)
            return
        needed = PATH_SCOPES[surface]
        try:
            challenge = await bearer_challenge(self.info, scope["path"], "insufficient_scope")
        except RPCError:
            challenge = f'Bearer error="insufficient_scope", scope="{needed}"'
        response = JSONResponse(
            {
                "error": {
                    "code": "forbidden",
                    "message": f"this token lacks the {needed!r} scope; sign in again and allow it",
                }
            },
            status_code=403,
            headers={"www-authenticate": challenge},
        )
        await response(scope, receive, send)
