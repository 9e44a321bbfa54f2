"""The permit table: which requests each socket may make, when, and who answers them.

Like OpenSSH's privsep monitor, nothing is implicit. A method absent from a surface's table,
or called in a phase its permit does not list, or a second time when it may run once, is a
protocol violation: the server closes that connection and logs a security event. A permitted
method with bad params gets a typed `invalid_params` answer, because params often carry user
input that a sound sandbox passes through. Params arrive decoded into the method's Struct
(`protocol.contract`); handlers that still take the params map get it through `_mapped`.
Every answer leaves as the method's result Struct (`protocol.contract_results`): a handler
returns it, or its map is decoded into it (`_typed`), so nothing outside the contract is sent.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from guardian import handlers, operator, relay_handlers
from guardian.handlers import CallContext
from guardian.oauth import handlers as oauth
from protocol.contract import Params, to_map
from protocol.contract_results import decode_result, to_wire
from protocol.methods import (
    AUTH_LOGIN,
    AUTH_LOGOUT,
    AUTH_VERIFY,
    HEALTH,
    HELLO,
    LLM_COMPLETE,
    LLM_STREAM,
    METHODS,
    MODELS_INFO,
    SEARCH_WEB,
    STATUS,
    MethodSpec,
    Surface,
)


class Phase(enum.Enum):
    NEW = "new"  # connected; only `hello` is allowed
    READY = "ready"  # hello answered; the surface's other methods are allowed


# A handler takes its method's params Struct (each handler names its own, hence Any here).
InlineHandler = Callable[[CallContext, Any], Any]
TaskHandler = Callable[[CallContext, Any], Awaitable[Any]]
MapHandler = Callable[[CallContext, dict[str, Any]], Awaitable[Any]]
MapInlineHandler = Callable[[CallContext, dict[str, Any]], Any]


def _mapped(handler: MapHandler) -> TaskHandler:
    """A handler that takes the params map: the decoded fields, as they were sent."""

    async def run(ctx: CallContext, params: Params) -> Any:
        return await handler(ctx, to_map(params))

    return run


def _mapped_inline(handler: MapInlineHandler) -> InlineHandler:
    def run(ctx: CallContext, params: Params) -> Any:
        return handler(ctx, to_map(params))

    return run


@dataclass(frozen=True, slots=True, kw_only=True)
class Permit:
    spec: MethodSpec
    phases: frozenset[Phase]
    once: bool = False
    #: An inline handler is a plain function without I/O, answered on the reader itself;
    #: any other runs in its own task so a slow call never blocks the connection.
    inline: InlineHandler | None = None
    task: TaskHandler | None = None


_NEW = frozenset({Phase.NEW})
_READY = frozenset({Phase.READY})

#: Sealed calls, the same on both sockets: operators may test a provider from the CLI.
_SEALED: Mapping[str, Permit] = {
    "llm.complete": Permit(spec=LLM_COMPLETE, phases=_READY, task=handlers.llm_complete),
    "llm.stream": Permit(spec=LLM_STREAM, phases=_READY, task=handlers.llm_stream),
    "search.web": Permit(spec=SEARCH_WEB, phases=_READY, task=handlers.search_web),
    "models.info": Permit(spec=MODELS_INFO, phases=_READY, task=handlers.models_info),
    "db.query": Permit(spec=METHODS["db.query"], phases=_READY, task=handlers.db_query),
    "llm.embed": Permit(spec=METHODS["llm.embed"], phases=_READY, task=handlers.llm_embed),
    "auth.login": Permit(spec=AUTH_LOGIN, phases=_READY, task=handlers.auth_login),
    "auth.verify": Permit(spec=AUTH_VERIFY, phases=_READY, task=handlers.auth_verify),
    "auth.logout": Permit(spec=AUTH_LOGOUT, phases=_READY, task=handlers.auth_logout),
}


def _operator(name: str, handler: MapHandler) -> Permit:
    return Permit(spec=METHODS[name], phases=_READY, task=_mapped(handler))


#: Operator commands: the admin socket only (the guardian's own uid or root).
_OPERATOR: Mapping[str, Permit] = {
    "users.add": _operator("users.add", operator.users_add),
    "users.list": _operator("users.list", operator.users_list),
    "users.lock": _operator("users.lock", operator.users_lock),
    "users.unlock": _operator("users.unlock", operator.users_unlock),
    "users.delete": _operator("users.delete", operator.users_delete),
    "users.passwd": _operator("users.passwd", operator.users_passwd),
    "users.role": _operator("users.role", operator.users_role),
    "tokens.issue": _operator("tokens.issue", operator.tokens_issue),
    "tokens.list": _operator("tokens.list", operator.tokens_list),
    "tokens.revoke": _operator("tokens.revoke", operator.tokens_revoke),
    "sessions.list": _operator("sessions.list", operator.sessions_list),
    "sessions.revoke": _operator("sessions.revoke", operator.sessions_revoke),
    "providers": Permit(
        spec=METHODS["providers"], phases=_READY, inline=_mapped_inline(operator.providers)
    ),
    "secrets.set": _operator("secrets.set", operator.secrets_set),
    "secrets.list": _operator("secrets.list", operator.secrets_list),
    "secrets.history": _operator("secrets.history", operator.secrets_history),
    "secrets.delete": _operator("secrets.delete", operator.secrets_delete),
    "secrets.rekey": _operator("secrets.rekey", operator.secrets_rekey),
    "audit.tail": _operator("audit.tail", operator.audit_tail),
    "usage.report": _operator("usage.report", operator.usage_report),
    "config.check": Permit(
        spec=METHODS["config.check"], phases=_READY, inline=_mapped_inline(operator.config_check)
    ),
    "config.reload": Permit(
        spec=METHODS["config.reload"], phases=_READY, inline=_mapped_inline(operator.config_reload)
    ),
    "oauth.clients": _operator("oauth.clients", oauth.clients),
    "oauth.grants": _operator("oauth.grants", oauth.grants),
}

#: SealGate's own OAuth authorization server: the sandbox socket only, once `hello` is done.
_OAUTH: Mapping[str, Permit] = {
    "oauth.server_info": Permit(
        spec=METHODS["oauth.server_info"], phases=_READY, inline=_mapped_inline(oauth.server_info)
    ),
    "oauth.authorize": Permit(
        spec=METHODS["oauth.authorize"], phases=_READY, task=_mapped(oauth.authorize)
    ),
    "oauth.login": Permit(spec=METHODS["oauth.login"], phases=_READY, task=_mapped(oauth.login)),
    "oauth.consent": Permit(
        spec=METHODS["oauth.consent"], phases=_READY, task=_mapped(oauth.consent)
    ),
    "oauth.token": Permit(spec=METHODS["oauth.token"], phases=_READY, task=_mapped(oauth.token)),
    "oauth.register": Permit(
        spec=METHODS["oauth.register"], phases=_READY, task=_mapped(oauth.register)
    ),
    "oauth.revoke": Permit(spec=METHODS["oauth.revoke"], phases=_READY, task=_mapped(oauth.revoke)),
    # a signed-in person's own consents (the grants page); the guardian resolves whose
    "oauth.own_grants": Permit(
        spec=METHODS["oauth.own_grants"], phases=_READY, task=oauth.own_grants
    ),
    "oauth.own_grant_revoke": Permit(
        spec=METHODS["oauth.own_grant_revoke"], phases=_READY, task=oauth.own_grant_revoke
    ),
}


#: Token counts (issue 27): the sandbox socket only, checked like llm.complete.
_COUNTING: Mapping[str, Permit] = {
    "llm.count_tokens": Permit(
        spec=METHODS["llm.count_tokens"], phases=_READY, task=handlers.llm_count_tokens
    ),
}


def _answer(spec: MethodSpec, answer: Any) -> dict[str, Any]:
    """The handler's answer as its method's result Struct, as the map that is sent."""
    return to_wire(decode_result(spec.returns, answer))


def _typed_inline(spec: MethodSpec, handler: InlineHandler) -> InlineHandler:
    def run(ctx: CallContext, params: Params) -> dict[str, Any]:
        return _answer(spec, handler(ctx, params))

    return run


def _typed_task(spec: MethodSpec, handler: TaskHandler) -> TaskHandler:
    async def run(ctx: CallContext, params: Params) -> dict[str, Any]:
        return _answer(spec, await handler(ctx, params))

    return run


def _typed(permits: Mapping[str, Permit]) -> Mapping[str, Permit]:
    """Every handler of a table answers its method's result Struct."""
    typed = {}
    for name, permit in permits.items():
        inline, task = permit.inline, permit.task
        typed[name] = dataclasses.replace(
            permit,
            inline=_typed_inline(permit.spec, inline) if inline is not None else None,
            task=_typed_task(permit.spec, task) if task is not None else None,
        )
    return typed


SANDBOX_PERMITS: Mapping[str, Permit] = {
    "hello": Permit(spec=HELLO, phases=_NEW, once=True, inline=handlers.hello),
    "health": Permit(spec=HEALTH, phases=_READY, inline=handlers.health),
    **_SEALED,
    **_OAUTH,
    # the caller's own usage and budget; the guardian resolves whose (issue 28)
    "usage.mine": Permit(spec=METHODS["usage.mine"], phases=_READY, task=handlers.usage_mine),
    # LLM calls as tasks, each its owner's alone (issue 28 item 5)
    "tasks.start": Permit(spec=METHODS["tasks.start"], phases=_READY, task=handlers.tasks_start),
    "tasks.get": Permit(spec=METHODS["tasks.get"], phases=_READY, task=handlers.tasks_get),
    "tasks.cancel": Permit(spec=METHODS["tasks.cancel"], phases=_READY, task=handlers.tasks_cancel),
    **_COUNTING,
    # any replica answers (issue 29): session ids and the legacy SSE relay
    "relay.session_open": Permit(
        spec=METHODS["relay.session_open"], phases=_READY, task=relay_handlers.session_open
    ),
    "relay.session_check": Permit(
        spec=METHODS["relay.session_check"], phases=_READY, task=relay_handlers.session_check
    ),
    "relay.listen": Permit(spec=METHODS["relay.listen"], phases=_READY, task=relay_handlers.listen),
    "relay.post": Permit(spec=METHODS["relay.post"], phases=_READY, task=relay_handlers.post),
}

ADMIN_PERMITS: Mapping[str, Permit] = {
    "hello": Permit(spec=HELLO, phases=_NEW, once=True, inline=handlers.hello),
    "health": Permit(spec=HEALTH, phases=_READY, inline=handlers.health),
    "status": Permit(spec=STATUS, phases=_READY, inline=handlers.status),
    **_SEALED,
    **_OPERATOR,
}

#: What the server serves: every table's handlers answer their method's result Struct.
PERMITS: Mapping[Surface, Mapping[str, Permit]] = {
    Surface.SANDBOX: _typed(SANDBOX_PERMITS),
    Surface.ADMIN: _typed(ADMIN_PERMITS),
}

#: Notifications a surface may send (no answer is ever sent to one).
NOTIFICATIONS: Mapping[Surface, frozenset[str]] = {
    Surface.SANDBOX: frozenset({"cancel", "stream.ack", "trace.spans"}),
    Surface.ADMIN: frozenset(),
}


# the verifiable audit log (guardian/tlog): operators only --------------------------------
from guardian.tlog import commands as audit_log  # noqa: E402

_AUDIT_LOG: Mapping[str, Permit] = {
    "audit.verify": Permit(
        spec=METHODS["audit.verify"], phases=_READY, task=audit_log.audit_verify
    ),
    "audit.prove": Permit(spec=METHODS["audit.prove"], phases=_READY, task=audit_log.audit_prove),
    "audit.consistency": Permit(
        spec=METHODS["audit.consistency"], phases=_READY, task=audit_log.audit_consistency
    ),
}
ADMIN_PERMITS = {**ADMIN_PERMITS, **_AUDIT_LOG}
PERMITS = {**PERMITS, Surface.ADMIN: _typed(ADMIN_PERMITS)}

# a caller's own receipts: the sandbox socket only, once `hello` is done
SANDBOX_PERMITS = {
    **SANDBOX_PERMITS,
    "receipts.get": Permit(
        spec=METHODS["receipts.get"], phases=_READY, task=audit_log.receipts_get
    ),
}
PERMITS = {**PERMITS, Surface.SANDBOX: _typed(SANDBOX_PERMITS)}

# upstream MCP servers behind the hub (docs/UPSTREAM_MCP.md) -------------------------------
from guardian.upstream import handlers as upstream  # noqa: E402

SANDBOX_PERMITS = {
    **SANDBOX_PERMITS,
    "mcp.list": Permit(spec=METHODS["mcp.list"], phases=_READY, task=upstream.mcp_list),
    "mcp.call": Permit(spec=METHODS["mcp.call"], phases=_READY, task=upstream.mcp_call),
}
ADMIN_PERMITS = {
    **ADMIN_PERMITS,
    "mcp.servers": Permit(spec=METHODS["mcp.servers"], phases=_READY, task=upstream.mcp_servers),
    "mcp.diff": Permit(spec=METHODS["mcp.diff"], phases=_READY, task=upstream.mcp_diff),
    "mcp.approve": Permit(spec=METHODS["mcp.approve"], phases=_READY, task=upstream.mcp_approve),
}
PERMITS = {Surface.SANDBOX: _typed(SANDBOX_PERMITS), Surface.ADMIN: _typed(ADMIN_PERMITS)}
