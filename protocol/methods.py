"""Every RPC method SealGate knows: its name, parameter schema, result schema and surface.

The guardian serves two surfaces. `SANDBOX` is what the internet-facing sandbox may ask on
`guardian.sock`; `ADMIN` is what operators (and the supervisor) may ask on `admin.sock`. A
method listed for neither does not exist. Handlers live in `guardian.dispatch`; this module
only says what a well-formed call looks like, so both processes agree on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.schema import Field, Schema


class Surface(enum.Enum):
    SANDBOX = "sandbox"  # guardian.sock: the sandbox uid only
    ADMIN = "admin"  # admin.sock: the guardian's own uid or root


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSpec:
    name: str
    params: Schema
    result: Schema
    surfaces: frozenset[Surface]
    streaming: bool = False
    doc: str = ""


_BOTH = frozenset({Surface.SANDBOX, Surface.ADMIN})
_ADMIN = frozenset({Surface.ADMIN})
_SANDBOX_ONLY = frozenset({Surface.SANDBOX})

_NAMES = Field(type=list, items=str, max_len=1024)

HELLO = MethodSpec(
    name="hello",
    doc="Protocol handshake; the first call on every connection, and only once.",
    params={
        "protocol_version": Field(type=int, min=1, max=1_000_000),
        "client": Field(type=str, max_len=32, choices=frozenset({"sandbox", "ctl", "supervisor"})),
        # The sandbox: every address it really listens on (open mode needs all loopback).
        "listen": Field(type=list, items=str, max_len=16, required=False),
    },
    result={
        "protocol_version": Field(type=int),
        "guardian_version": Field(type=str),
        "llm_providers": _NAMES,
        "search_providers": _NAMES,
        "tools": _NAMES,
    },
    surfaces=_BOTH,
)

HEALTH = MethodSpec(
    name="health",
    doc="Liveness and versions; cheap enough to call on every health check.",
    params={},
    result={
        "status": Field(type=str),
        "version": Field(type=str),
        "protocol_version": Field(type=int),
        "uptime_s": Field(type=float),
        "python": Field(type=str),
        "pid": Field(type=int),
        # numbers only (the sandbox exports them on /metrics): {"usage_ledger_pending",
        # "usage_ledger_capacity", "usage_ledger_dropped", "task_restarts"}
        "queues": Field(type=dict),
    },
    surfaces=_BOTH,
)

STATUS = MethodSpec(
    name="status",
    doc="Operator view: versions, uptime, sandbox link, config path and hash, providers.",
    params={},
    result={
        "version": Field(type=str),
        "uptime_s": Field(type=float),
        "pid": Field(type=int),
        "config_path": Field(type=str),
        "config_sha256": Field(type=str),
        "sandbox_connections": Field(type=int),
        "llm_providers": _NAMES,
        "search_providers": _NAMES,
        "tools": _NAMES,
        "database": Field(type=str),
        "protections": Field(type=dict, max_len=None),
        # {"tasks": {name: {running, restarts, last_error}}, "usage_ledger": {pending,
        # capacity, dropped}}
        "background": Field(type=dict),
    },
    surfaces=_ADMIN,
)

#: Who the sandbox is calling for: the credential exactly as received (bearer token or session
#: id; nil in open mode), the client's address and User-Agent. The guardian resolves the
#: principal itself; the sandbox never asserts an identity.
CALLER = Field(
    type=dict,
    fields={
        "credential": Field(type=str, required=False, max_len=512),
        "ip": Field(type=str, max_len=64),
        "user_agent": Field(type=str, max_len=512),
    },
)

MAX_PROMPT = 1024 * 1024
_NAME = Field(type=str, required=False, max_len=200)

_LLM_PARAMS = {
    "caller": CALLER,
    "tool": Field(type=str, max_len=64),
    # Either a prompt, or messages in OpenAI's chat shape (with tools for function calling).
    "prompt": Field(type=str, required=False, max_len=MAX_PROMPT),
    "messages": Field(type=list, required=False, max_len=1000, items=dict),
    "tools": Field(type=list, required=False, max_len=256, items=dict),
    "tool_choice": Field(type=(str, dict), required=False, max_len=None),
    "response_format": Field(type=dict, required=False, max_len=None),
    "system": Field(type=str, required=False, max_len=MAX_PROMPT),
    "provider": _NAME,
    "model": _NAME,
    "max_tokens": Field(type=int, required=False, min=1, max=1_000_000),
    "temperature": Field(type=(int, float), required=False, min=0.0, max=2.0),
}

LLM_RESULT = {
    "text": Field(type=str, max_len=None),
    "provider": Field(type=str),
    "model": Field(type=str),
    "fallback_path": Field(type=list, max_len=None),
    "usage": Field(type=dict),
    "cost_usd": Field(type=(float, type(None))),
    "latency_ms": Field(type=float),
    "finish_reason": Field(type=str),
    "tool_calls": Field(type=list, max_len=None),
}

LLM_COMPLETE = MethodSpec(
    name="llm.complete",
    doc="One completion through the tool's provider chain; the guardian picks and pays.",
    params=_LLM_PARAMS,
    result=LLM_RESULT,
    surfaces=_BOTH,
)

LLM_STREAM = MethodSpec(
    name="llm.stream",
    doc="Like llm.complete, streamed: chunks {'text': delta} as they arrive, then the result"
    " (its text empty: the chunks carried it).",
    params=_LLM_PARAMS,
    result=LLM_RESULT,
    surfaces=_BOTH,
    streaming=True,
)

LLM_EMBED = MethodSpec(
    name="llm.embed",
    doc="Embeddings of one text or a list of texts, from the model's provider.",
    params={
        "caller": CALLER,
        "model": Field(type=str, max_len=200),
        "input": Field(type=(str, list), max_len=2048, items=str),
    },
    result={
        "data": Field(type=list, max_len=None),
        "model": Field(type=str),
        "provider": Field(type=str),
        "usage": Field(type=dict),
    },
    surfaces=_BOTH,
)

SEARCH_WEB = MethodSpec(
    name="search.web",
    doc="A web search through the search provider chain.",
    params={
        "caller": CALLER,
        "tool": Field(type=str, max_len=64),
        "query": Field(type=str, max_len=2000),
        "max_results": Field(type=int, required=False, min=1, max=50),
        "provider": _NAME,
    },
    result={
        "results": Field(type=list, max_len=None),
        "provider": Field(type=str),
        "fallback_path": Field(type=list),
        "answer": Field(type=str, required=False, max_len=None),
        "latency_ms": Field(type=float),
    },
    surfaces=_BOTH,
)

MODELS_INFO = MethodSpec(
    name="models.info",
    doc="Limits, costs and capabilities of configured models (all, or one).",
    params={"caller": CALLER, "model": _NAME},
    result={"models": Field(type=list, max_len=None)},
    surfaces=_BOTH,
)

DB_QUERY = MethodSpec(
    name="db.query",
    doc="A read-only SELECT over the operator's allowlisted PostgreSQL tables.",
    params={
        "caller": CALLER,
        "sql": Field(type=str, max_len=100_000),
        "max_rows": Field(type=int, required=False, min=1, max=10_000),
    },
    result={
        "columns": Field(type=list),
        "rows": Field(type=list, max_len=None),
        "row_count": Field(type=int),
        "truncated": Field(type=bool),
    },
    surfaces=_BOTH,
)

AUTH_LOGIN = MethodSpec(
    name="auth.login",
    doc="Check a user name and password; a new session bound to the caller's IP and UA.",
    params={
        "caller": CALLER,
        "username": Field(type=str, max_len=64),
        "password": Field(type=str, max_len=1024),
    },
    result={
        "session": Field(type=str),
        "principal": Field(type=str),
        "expires_at": Field(type=float),
    },
    surfaces=_BOTH,
)

AUTH_VERIFY = MethodSpec(
    name="auth.verify",
    doc="Who the caller's credential belongs to (or the open-mode principal).",
    params={"caller": CALLER},
    result={
        "principal": Field(type=str),
        "role": Field(type=str),
        "kind": Field(type=str),
        "admin": Field(type=bool),
        "auth_enabled": Field(type=bool),
        # an OAuth access token's scopes (absent for other credentials)
        "scopes": Field(type=list, items=str, required=False, max_len=16),
        # the user's stable id ('' for open mode); a digest of the user, the credential and
        # its role and scopes (what cached tool answers are keyed by); the tools it may call
        "user_id": Field(type=str, max_len=64),
        "grant": Field(type=str, max_len=64),
        "tools": _NAMES,
    },
    surfaces=_BOTH,
)

AUTH_LOGOUT = MethodSpec(
    name="auth.logout",
    doc="End the caller's session.",
    params={"caller": CALLER},
    result={"ok": Field(type=bool)},
    surfaces=_BOTH,
)

_USER = Field(type=str, max_len=64)
_OK = {"ok": Field(type=bool)}


def _admin(
    name: str, doc: str, params: dict[str, Field], result: dict[str, Field] | None = None
) -> MethodSpec:
    return MethodSpec(name=name, doc=doc, params=params, result=result or _OK, surfaces=_ADMIN)


ADMIN_METHODS = (
    _admin(
        "users.add",
        "Create a user (password optional: token-only users).",
        {
            "name": _USER,
            "password": Field(type=str, required=False, max_len=1024),
            "role": Field(type=str, required=False, max_len=64),
        },
        {**_OK, "auth_switched_on": Field(type=bool, required=False)},
    ),
    _admin(
        "users.list",
        "Every user with role and lock state.",
        {},
        {"users": Field(type=list, max_len=None)},
    ),
    _admin("users.lock", "Lock a user until unlocked.", {"name": _USER}),
    _admin("users.unlock", "Unlock a user and clear failed logins.", {"name": _USER}),
    _admin(
        "users.delete",
        "Delete a user with their tokens and sessions; says whether auth went off with it.",
        {"name": _USER},
        {
            **_OK,
            "auth_switched_off": Field(type=bool, required=False),
            "open_mode": Field(type=bool, required=False),
        },
    ),
    _admin(
        "users.passwd",
        "Set a user's password; ends their sessions.",
        {"name": _USER, "password": Field(type=str, max_len=1024)},
    ),
    _admin(
        "users.role", "Change a user's role.", {"name": _USER, "role": Field(type=str, max_len=64)}
    ),
    _admin(
        "tokens.issue",
        "Issue an API token; its value is shown once.",
        {
            "user": _USER,
            "expires_s": Field(type=(int, float), required=False, min=60, max=10 * 365 * 86400),
            "label": Field(type=str, required=False, max_len=200),
        },
        {
            "token": Field(type=str),
            "id": Field(type=str),
            "user": Field(type=str),
            "expires_at": Field(type=(float, type(None))),
        },
    ),
    _admin(
        "tokens.list",
        "API tokens (never their values).",
        {"user": Field(type=str, required=False, max_len=64)},
        {"tokens": Field(type=list, max_len=None)},
    ),
    _admin(
        "tokens.revoke",
        "Revoke a token by id or by value.",
        {"token": Field(type=str, max_len=200)},
    ),
    _admin("sessions.list", "Open sessions.", {}, {"sessions": Field(type=list, max_len=None)}),
    _admin(
        "providers",
        "Every provider: active or not and why, and where each key came from.",
        {},
        {"providers": Field(type=list, max_len=None)},
    ),
    _admin(
        "audit.tail",
        "Audit entries since a time (or after an id), newest last.",
        {
            "since": Field(type=(int, float), required=False, min=0),
            "after_id": Field(type=int, required=False, min=0),
            "user": Field(type=str, required=False, max_len=64),
            "tool": Field(type=str, required=False, max_len=64),
            "limit": Field(type=int, required=False, min=1, max=10_000),
        },
        {"entries": Field(type=list, max_len=None)},
    ),
    _admin(
        "usage.report",
        "Calls, errors, tokens and cost since a time, grouped.",
        {
            "since": Field(type=(int, float), min=0),
            "by": Field(type=str, choices=frozenset({"user", "model", "provider", "day", "tool"})),
        },
        {"rows": Field(type=list, max_len=None)},
    ),
    _admin(
        "secrets.set",
        "Store a new version of a secret (the value goes in, never out).",
        {"name": Field(type=str, max_len=128), "value": Field(type=str, max_len=65536)},
        {"version": Field(type=int)},
    ),
    _admin(
        "secrets.list",
        "Secret names with versions, dates and status; never values.",
        {},
        {
            "secrets": Field(type=list, max_len=None),
            "enabled": Field(type=bool),
            "why_disabled": Field(type=str),
        },
    ),
    _admin(
        "secrets.history",
        "Every version of one secret; never values.",
        {"name": Field(type=str, max_len=128)},
        {"versions": Field(type=list, max_len=None)},
    ),
    _admin(
        "secrets.delete",
        "Delete a secret (all its versions stop working).",
        {"name": Field(type=str, max_len=128)},
    ),
    _admin(
        "secrets.rekey",
        "Re-encrypt everything under the key in a file the guardian can read.",
        {"new_key_file": Field(type=str, max_len=4096)},
        {"count": Field(type=int)},
    ),
    _admin(
        "config.check",
        "Validate .pyfun text against this guardian's secrets; apply nothing.",
        {"text": Field(type=str, max_len=4 * 1024 * 1024), "source": Field(type=str, max_len=4096)},
        {
            "ok": Field(type=bool),
            "sha256": Field(type=str),
            "warnings": Field(type=list, max_len=None),
            "translations": Field(type=list, max_len=None),
            "tools": _NAMES,
            "llm_providers": _NAMES,
            "search_providers": _NAMES,
        },
    ),
    _admin(
        "config.reload",
        "Re-read .pyfun and secrets; keep the old ones on any error.",
        {},
        {
            "ok": Field(type=bool),
            "sha256": Field(type=str),
            "tools": _NAMES,
            "llm_providers": _NAMES,
            "search_providers": _NAMES,
        },
    ),
    _admin(
        "sessions.revoke",
        "End sessions: all of one user's, or one by id.",
        {
            "user": Field(type=str, required=False, max_len=64),
            "id": Field(type=str, required=False, max_len=64),
        },
        {"revoked": Field(type=int)},
    ),
)

# OAuth 2.1 ------------------------------------------------------------------------------
# SealGate as its own authorization server: the sandbox serves the endpoints and pages, the
# guardian decides and stores (clients, codes, consents, tokens). Every OAuth field the
# sandbox forwards is user input, so each is bounded here and re-checked by the guardian. A
# refusal the client must see in OAuth's shape carries `data["oauth_error"]` (RFC 6749 5.2).
_URL = Field(type=str, max_len=2048)

#: The authorization request as received on `/oauth/authorize` (query or form).
AUTHORIZE_REQUEST = Field(
    type=dict,
    fields={
        "response_type": Field(type=str, max_len=32),
        "client_id": _URL,
        "redirect_uri": _URL,
        "scope": Field(type=str, required=False, max_len=512),
        "state": Field(type=str, required=False, max_len=1024),
        "code_challenge": Field(type=str, required=False, max_len=256),
        "code_challenge_method": Field(type=str, required=False, max_len=16),
        "resource": Field(type=str, required=False, max_len=2048),
    },
)

_CONSENT_VIEW = {
    "client_name": Field(type=str, max_len=256),
    "client_id": _URL,
    "redirect_host": Field(type=str, max_len=512),
    "scopes": Field(type=list, items=str, max_len=16),
    "resource": _URL,
}

OAUTH_SERVER_INFO = MethodSpec(
    name="oauth.server_info",
    doc="The resource identifier, issuer and scopes the metadata documents publish.",
    params={},
    result={
        "resource": _URL,
        "issuer": _URL,
        "scopes_supported": Field(type=list, items=str, max_len=16),
        "cimd_loopback_allowed": Field(type=bool),
    },
    surfaces=_SANDBOX_ONLY,
)

OAUTH_AUTHORIZE = MethodSpec(
    name="oauth.authorize",
    doc="Check an authorization request (client, redirect, PKCE, scope, resource) before"
    " the sign-in page is shown; fetches a client metadata document when needed.",
    params={"caller": CALLER, "request": AUTHORIZE_REQUEST},
    result=_CONSENT_VIEW,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_LOGIN = MethodSpec(
    name="oauth.login",
    doc="Sign in on the authorization page. A consent already given for these scopes"
    " answers with the redirect (code issued); otherwise with a consent ticket.",
    params={
        "caller": CALLER,
        "request": AUTHORIZE_REQUEST,
        "username": Field(type=str, max_len=64),
        "password": Field(type=str, max_len=1024),
    },
    result={
        "redirect_to": Field(type=str, required=False, max_len=8192),
        "ticket": Field(type=str, required=False, max_len=128),
        **{
            k: Field(type=v.type, required=False, max_len=v.max_len, items=v.items)
            for k, v in _CONSENT_VIEW.items()
        },
    },
    surfaces=_SANDBOX_ONLY,
)

OAUTH_CONSENT = MethodSpec(
    name="oauth.consent",
    doc="The signed-in person allowed or denied; answers the redirect (code or error).",
    params={
        "caller": CALLER,
        "ticket": Field(type=str, max_len=128),
        "approve": Field(type=bool),
    },
    result={"redirect_to": Field(type=str, max_len=8192)},
    surfaces=_SANDBOX_ONLY,
)

#: The token endpoint's form, as received (RFC 6749 section 4.1.3 and 6).
TOKEN_FORM = Field(
    type=dict,
    fields={
        "grant_type": Field(type=str, max_len=64),
        "code": Field(type=str, required=False, max_len=256),
        "redirect_uri": Field(type=str, required=False, max_len=2048),
        "client_id": Field(type=str, required=False, max_len=2048),
        "client_secret": Field(type=str, required=False, max_len=256),
        "code_verifier": Field(type=str, required=False, max_len=256),
        "refresh_token": Field(type=str, required=False, max_len=256),
        "scope": Field(type=str, required=False, max_len=512),
        "resource": Field(type=str, required=False, max_len=2048),
    },
)

OAUTH_TOKEN = MethodSpec(
    name="oauth.token",
    doc="The token endpoint: an authorization code or a refresh token for tokens.",
    params={"caller": CALLER, "form": TOKEN_FORM},
    result={
        "access_token": Field(type=str, max_len=256),
        "token_type": Field(type=str, max_len=16),
        "expires_in": Field(type=int),
        "refresh_token": Field(type=str, max_len=256),
        "scope": Field(type=str, max_len=512),
    },
    surfaces=_SANDBOX_ONLY,
)

OAUTH_REGISTER = MethodSpec(
    name="oauth.register",
    doc="Dynamic Client Registration (RFC 7591): a public client, PKCE required.",
    params={"caller": CALLER, "metadata": Field(type=dict, max_len=64)},
    result={"client": Field(type=dict, max_len=None)},
    surfaces=_SANDBOX_ONLY,
)

OAUTH_REVOKE = MethodSpec(
    name="oauth.revoke",
    doc="Token revocation (RFC 7009): an access or refresh token, with its whole family.",
    params={
        "caller": CALLER,
        "token": Field(type=str, max_len=512),
        "token_type_hint": Field(type=str, required=False, max_len=32),
        "client_id": Field(type=str, required=False, max_len=2048),
    },
    result=_OK,
    surfaces=_SANDBOX_ONLY,
)

_TARGET = Field(type=str, required=False, max_len=2048)

OAUTH_ADMIN_METHODS = (
    MethodSpec(
        name="oauth.clients",
        doc="OAuth clients (registered and metadata-document ones); revoke one with its tokens.",
        params={"revoke": _TARGET},
        result={"clients": Field(type=list, max_len=None), "revoked": Field(type=int)},
        surfaces=_ADMIN,
    ),
    MethodSpec(
        name="oauth.grants",
        doc="Consents given (user, client, scopes, live tokens); revoke one user's consent"
        " for one client, with its tokens.",
        params={
            "user": Field(type=str, required=False, max_len=64),
            "revoke_client": _TARGET,
        },
        result={"grants": Field(type=list, max_len=None), "revoked": Field(type=int)},
        surfaces=_ADMIN,
    ),
)

OAUTH_METHODS: tuple[MethodSpec, ...] = (
    OAUTH_SERVER_INFO,
    OAUTH_AUTHORIZE,
    OAUTH_LOGIN,
    OAUTH_CONSENT,
    OAUTH_TOKEN,
    OAUTH_REGISTER,
    OAUTH_REVOKE,
    *OAUTH_ADMIN_METHODS,
)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        HELLO,
        HEALTH,
        STATUS,
        LLM_COMPLETE,
        LLM_STREAM,
        SEARCH_WEB,
        MODELS_INFO,
        DB_QUERY,
        LLM_EMBED,
        AUTH_LOGIN,
        AUTH_VERIFY,
        AUTH_LOGOUT,
        *ADMIN_METHODS,
        *OAUTH_METHODS,
    )
}


def methods_for(surface: Surface) -> dict[str, MethodSpec]:
    """The methods a connection on `surface` may call."""
    return {name: spec for name, spec in METHODS.items() if surface in spec.surfaces}
