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
    _admin("users.delete", "Delete a user with their tokens and sessions.", {"name": _USER}),
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
    )
}


def methods_for(surface: Surface) -> dict[str, MethodSpec]:
    """The methods a connection on `surface` may call."""
    return {name: spec for name, spec in METHODS.items() if surface in spec.surfaces}
