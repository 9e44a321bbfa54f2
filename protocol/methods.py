"""Every RPC method SealGate knows: its name, params Struct, result schema and surface.

The guardian serves two surfaces. `SANDBOX` is what the internet-facing sandbox may ask on
`guardian.sock`; `ADMIN` is what operators (and the supervisor) may ask on `admin.sock`. A
method listed for neither does not exist. Handlers live in `guardian.dispatch`; this module
only says what a well-formed call looks like, so both processes agree on it. The params of
each method are declared once, as a Struct in `protocol.contract`, and decoded straight into it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.contract import (
    AuditTailParams,
    ConfigCheckParams,
    DbQueryParams,
    EmbedParams,
    HelloParams,
    LlmParams,
    LoginParams,
    ModelsInfoParams,
    NoParams,
    OAuthAuthorizeParams,
    OAuthClientsParams,
    OAuthConsentParams,
    OAuthGrantsParams,
    OAuthLoginParams,
    OAuthRegisterParams,
    OAuthRevokeParams,
    OAuthTokenParams,
    Params,
    Sealed,
    SearchParams,
    SecretParams,
    SecretsRekeyParams,
    SecretsSetParams,
    SessionsRevokeParams,
    TokenParams,
    TokensIssueParams,
    TokensListParams,
    UsageReportParams,
    UserParams,
    UsersAddParams,
    UsersPasswdParams,
    UsersRoleParams,
)
from protocol.schema import Field, Schema


class Surface(enum.Enum):
    SANDBOX = "sandbox"  # guardian.sock: the sandbox uid only
    ADMIN = "admin"  # admin.sock: the guardian's own uid or root


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSpec:
    name: str
    params: type[Params]
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
    params=HelloParams,
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
    params=NoParams,
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
    params=NoParams,
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
    # Anthropic's thinking blocks, when the provider is Anthropic and thinking was asked for
    "thinking": Field(type=list, required=False, max_len=None),
    # what the provider was not sent: {"anthropic-beta": [...], "anthropic": [field, ...]}
    "dropped": Field(type=dict, required=False),
}

LLM_COMPLETE = MethodSpec(
    name="llm.complete",
    doc="One completion through the tool's provider chain; the guardian picks and pays.",
    params=LlmParams,
    result=LLM_RESULT,
    surfaces=_BOTH,
)

LLM_STREAM = MethodSpec(
    name="llm.stream",
    doc="Like llm.complete, streamed: chunks {'text': delta} as they arrive, then the result"
    " (its text empty: the chunks carried it).",
    params=LlmParams,
    result=LLM_RESULT,
    surfaces=_BOTH,
    streaming=True,
)

LLM_EMBED = MethodSpec(
    name="llm.embed",
    doc="Embeddings of one text or a list of texts, from the model's provider.",
    params=EmbedParams,
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
    params=SearchParams,
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
    params=ModelsInfoParams,
    result={"models": Field(type=list, max_len=None)},
    surfaces=_BOTH,
)

DB_QUERY = MethodSpec(
    name="db.query",
    doc="A read-only SELECT over the operator's allowlisted PostgreSQL tables.",
    params=DbQueryParams,
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
    params=LoginParams,
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
    params=Sealed,
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
    params=Sealed,
    result={"ok": Field(type=bool)},
    surfaces=_BOTH,
)

_OK = {"ok": Field(type=bool)}


def _admin(
    name: str, doc: str, params: type[Params], result: dict[str, Field] | None = None
) -> MethodSpec:
    return MethodSpec(name=name, doc=doc, params=params, result=result or _OK, surfaces=_ADMIN)


ADMIN_METHODS = (
    _admin(
        "users.add",
        "Create a user (password optional: token-only users).",
        UsersAddParams,
        {**_OK, "auth_switched_on": Field(type=bool, required=False)},
    ),
    _admin(
        "users.list",
        "Every user with role and lock state.",
        NoParams,
        {"users": Field(type=list, max_len=None)},
    ),
    _admin("users.lock", "Lock a user until unlocked.", UserParams),
    _admin("users.unlock", "Unlock a user and clear failed logins.", UserParams),
    _admin(
        "users.delete",
        "Delete a user with their tokens and sessions; says whether auth went off with it.",
        UserParams,
        {
            **_OK,
            "auth_switched_off": Field(type=bool, required=False),
            "open_mode": Field(type=bool, required=False),
        },
    ),
    _admin(
        "users.passwd",
        "Set a user's password; ends their sessions.",
        UsersPasswdParams,
    ),
    _admin("users.role", "Change a user's role.", UsersRoleParams),
    _admin(
        "tokens.issue",
        "Issue an API token; its value is shown once.",
        TokensIssueParams,
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
        TokensListParams,
        {"tokens": Field(type=list, max_len=None)},
    ),
    _admin(
        "tokens.revoke",
        "Revoke a token by id or by value.",
        TokenParams,
    ),
    _admin(
        "sessions.list", "Open sessions.", NoParams, {"sessions": Field(type=list, max_len=None)}
    ),
    _admin(
        "providers",
        "Every provider: active or not and why, and where each key came from.",
        NoParams,
        {"providers": Field(type=list, max_len=None)},
    ),
    _admin(
        "audit.tail",
        "Audit entries since a time (or after an id), newest last.",
        AuditTailParams,
        {"entries": Field(type=list, max_len=None)},
    ),
    _admin(
        "usage.report",
        "Calls, errors, tokens and cost since a time, grouped.",
        UsageReportParams,
        {"rows": Field(type=list, max_len=None)},
    ),
    _admin(
        "secrets.set",
        "Store a new version of a secret (the value goes in, never out).",
        SecretsSetParams,
        {"version": Field(type=int)},
    ),
    _admin(
        "secrets.list",
        "Secret names with versions, dates and status; never values.",
        NoParams,
        {
            "secrets": Field(type=list, max_len=None),
            "enabled": Field(type=bool),
            "why_disabled": Field(type=str),
        },
    ),
    _admin(
        "secrets.history",
        "Every version of one secret; never values.",
        SecretParams,
        {"versions": Field(type=list, max_len=None)},
    ),
    _admin(
        "secrets.delete",
        "Delete a secret (all its versions stop working).",
        SecretParams,
    ),
    _admin(
        "secrets.rekey",
        "Re-encrypt everything under the key in a file the guardian can read.",
        SecretsRekeyParams,
        {"count": Field(type=int)},
    ),
    _admin(
        "config.check",
        "Validate .pyfun text against this guardian's secrets; apply nothing.",
        ConfigCheckParams,
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
        NoParams,
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
        SessionsRevokeParams,
        {"revoked": Field(type=int)},
    ),
)

# OAuth 2.1 ------------------------------------------------------------------------------
# SealGate as its own authorization server: the sandbox serves the endpoints and pages, the
# guardian decides and stores (clients, codes, consents, tokens). Every OAuth field the
# sandbox forwards is user input, so each is bounded (in `protocol.contract`) and re-checked by
# the guardian. A refusal the client must see in OAuth's shape carries `data["oauth_error"]`
# (RFC 6749 5.2).
_URL = Field(type=str, max_len=2048)

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
    params=NoParams,
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
    params=OAuthAuthorizeParams,
    result=_CONSENT_VIEW,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_LOGIN = MethodSpec(
    name="oauth.login",
    doc="Sign in on the authorization page. A consent already given for these scopes"
    " answers with the redirect (code issued); otherwise with a consent ticket.",
    params=OAuthLoginParams,
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
    params=OAuthConsentParams,
    result={"redirect_to": Field(type=str, max_len=8192)},
    surfaces=_SANDBOX_ONLY,
)

OAUTH_TOKEN = MethodSpec(
    name="oauth.token",
    doc="The token endpoint: an authorization code or a refresh token for tokens.",
    params=OAuthTokenParams,
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
    params=OAuthRegisterParams,
    result={"client": Field(type=dict, max_len=None)},
    surfaces=_SANDBOX_ONLY,
)

OAUTH_REVOKE = MethodSpec(
    name="oauth.revoke",
    doc="Token revocation (RFC 7009): an access or refresh token, with its whole family.",
    params=OAuthRevokeParams,
    result=_OK,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_ADMIN_METHODS = (
    MethodSpec(
        name="oauth.clients",
        doc="OAuth clients (registered and metadata-document ones); revoke one with its tokens.",
        params=OAuthClientsParams,
        result={"clients": Field(type=list, max_len=None), "revoked": Field(type=int)},
        surfaces=_ADMIN,
    ),
    MethodSpec(
        name="oauth.grants",
        doc="Consents given (user, client, scopes, live tokens); revoke one user's consent"
        " for one client, with its tokens.",
        params=OAuthGrantsParams,
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
