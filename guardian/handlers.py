"""The guardian's RPC handlers. Each gets its method's params Struct, already decoded and
checked (`protocol.contract`), re-checks what only it can, and answers its method's result
Struct (`protocol.contract_results`). The call path (the router, the catalog) and auth still
take params maps (`to_map` gives them the fields as sent) and answer maps, which are decoded
into the result Struct here, so a field the contract does not declare never leaves.

Handlers listed as inline in `guardian.dispatch` are plain functions that do no I/O; they
run in the socket's data callback without a task of their own. The operator commands of the
admin socket are in `guardian.operator`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from guardian import catalog, telemetry
from guardian.dbquery import QuerySettings
from guardian.identity.principal import OPEN_MODE_DB_QUERY, OPERATOR, Principal
from guardian.limits import month_start
from guardian.services import Services
from protocol import PROTOCOL_VERSION, __version__
from protocol.contract import (
    CountTokensParams,
    DbQueryParams,
    EmbedParams,
    HelloParams,
    LlmParams,
    LoginParams,
    ModelsInfoParams,
    NoParams,
    Sealed,
    SealedCall,
    SearchParams,
    TaskRefParams,
    UsageMineParams,
    to_map,
)
from protocol.contract_results import (
    CountTokensResult,
    DbQueryResult,
    EmbedResult,
    HealthResult,
    HelloResult,
    LlmResult,
    LoginResult,
    ModelsInfoResult,
    Ok,
    SearchResult,
    StatusResult,
    TaskInfo,
    TracingSettings,
    UsageMineResult,
    VerifyResult,
    decode_result,
)
from protocol.errors import (
    BudgetExceeded,
    Forbidden,
    Internal,
    InvalidParams,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from protocol.methods import Surface
from protocol.pyfun import is_loopback_host

#: Refusals that are written to the audit log with the caller's address.
AUDITED = (Forbidden, RateLimited, BudgetExceeded, Unauthenticated)

Emit = Callable[[Any], Awaitable[None]]


@dataclass(slots=True)
class CallContext:
    """Which socket the call came in on (the peer's uid was checked at connect) and, for a
    streaming call, how to send a chunk."""

    services: Services
    surface: Surface
    emit: Emit | None = None
    #: The sandbox said in `hello` that it listens on loopback only (never assumed).
    listens_on_loopback: bool = False


async def principal_of(ctx: CallContext, params: SealedCall) -> Principal:
    """Operators on the admin socket act as themselves; sandbox calls carry a credential
    that only the guardian resolves."""
    if ctx.surface is Surface.ADMIN:
        return OPERATOR
    return await ctx.services.credentials.resolve(to_map(params.caller), ctx.listens_on_loopback)


SealedRun = Callable[[Principal], Awaitable[dict[str, Any]]]


async def _audited(
    ctx: CallContext, params: SealedCall, action: str, run: SealedRun
) -> dict[str, Any]:
    """Run a sealed call for its principal; refusals go to the audit log."""
    ip = params.caller.ip
    tool = params.tool if isinstance(params, LlmParams | SearchParams) else ""
    try:
        principal = await principal_of(ctx, params)
    except Unauthenticated as exc:
        await ctx.services.storage.add_audit("-", action, exc.code.value, ip, exc.message, tool)
        raise
    try:
        return await run(principal)
    except AUDITED as exc:
        await ctx.services.storage.add_audit(
            principal.name, action, exc.code.value, ip, exc.message, tool, user_id=principal.user_id
        )
        raise


def hello(ctx: CallContext, params: HelloParams) -> HelloResult:
    if params.protocol_version != PROTOCOL_VERSION:
        raise InvalidParams(
            f"protocol version {params.protocol_version} is not supported; this guardian"
            f" speaks {PROTOCOL_VERSION}"
        )
    if ctx.surface is Surface.SANDBOX and params.client != "sandbox":
        raise InvalidParams("only the sandbox connects on this socket")
    if ctx.surface is Surface.SANDBOX:
        listen = [str(h) for h in params.listen or []]
        ctx.listens_on_loopback = bool(listen) and all(is_loopback_host(h) for h in listen)
        ctx.services.accounts.sandbox_listens_on(listen)
    snapshot = ctx.services.live.snapshot
    return HelloResult(
        protocol_version=PROTOCOL_VERSION,
        guardian_version=__version__,
        llm_providers=list(snapshot.llm_providers),
        search_providers=list(snapshot.search_providers),
        tools=list(snapshot.tools),
        tracing=TracingSettings(
            enabled=telemetry.enabled(),
            trusted_clients=list(snapshot.config.hub.trace_trusted_clients),
        ),
    )


def health(ctx: CallContext, params: NoParams) -> HealthResult:
    return HealthResult(
        status="ok",
        version=__version__,
        protocol_version=PROTOCOL_VERSION,
        uptime_s=ctx.services.uptime_s,
        python=platform.python_version(),
        pid=os.getpid(),
        queues=queue_figures(ctx.services),
    )


def queue_figures(services: Services) -> dict[str, int]:
    """Counts only (no names, no error text): safe to show the sandbox and its /metrics."""
    ledger = services.ledger.stats()
    tasks = services.tasks.stats()
    return {
        "usage_ledger_pending": int(ledger.get("pending", 0)),
        "usage_ledger_capacity": int(ledger.get("capacity", 0)),
        "usage_ledger_dropped": int(ledger.get("dropped", 0)),
        "task_restarts": sum(int(t["restarts"]) for t in tasks.values()),
    }


def status(ctx: CallContext, params: NoParams) -> StatusResult:
    services = ctx.services
    snapshot = services.live.snapshot
    return StatusResult(
        version=__version__,
        uptime_s=services.uptime_s,
        pid=os.getpid(),
        config_path=str(services.live.path),
        config_sha256=snapshot.config.sha256,
        sandbox_connections=services.sandboxes.connected,
        sandboxes=services.sandboxes.links(),
        llm_providers=list(snapshot.llm_providers),
        search_providers=list(snapshot.search_providers),
        tools=list(snapshot.tools),
        database=services.storage.describe(),
        protections=services.protections(),
        background=background(services),
    )


def background(services: Services) -> dict[str, Any]:
    """Supervised tasks and the queue they drain: a failing task or a full ledger shows."""
    return {
        "tasks": services.tasks.stats(),
        "usage_ledger": services.ledger.stats(),
        "audit_log": services.checkpoints.stats(),
    }


async def llm_complete(ctx: CallContext, params: LlmParams) -> LlmResult:
    router, request = ctx.services.router, to_map(params)
    answer = await _audited(
        ctx, params, "llm.complete", lambda principal: router.complete(request, principal)
    )
    return decode_result(LlmResult, answer)


async def llm_stream(ctx: CallContext, params: LlmParams) -> LlmResult:
    emit = ctx.emit
    if emit is None:
        raise Internal("llm.stream was dispatched without a stream")
    router, request = ctx.services.router, to_map(params)
    answer = await _audited(
        ctx, params, "llm.stream", lambda principal: router.complete(request, principal, emit)
    )
    return decode_result(LlmResult, answer)


async def llm_embed(ctx: CallContext, params: EmbedParams) -> EmbedResult:
    router, request = ctx.services.router, to_map(params)
    answer = await _audited(
        ctx, params, "llm.embed", lambda principal: router.embed(request, principal)
    )
    return decode_result(EmbedResult, answer)


async def search_web(ctx: CallContext, params: SearchParams) -> SearchResult:
    router, request = ctx.services.router, to_map(params)
    answer = await _audited(
        ctx, params, "search.web", lambda principal: router.search(request, principal)
    )
    return decode_result(SearchResult, answer)


async def models_info(ctx: CallContext, params: ModelsInfoParams) -> ModelsInfoResult:
    principal = await principal_of(ctx, params)
    snapshot = ctx.services.live.snapshot
    return decode_result(
        ModelsInfoResult, catalog.models_info(snapshot, to_map(params), principal.role)
    )


async def db_query(ctx: CallContext, params: DbQueryParams) -> DbQueryResult:
    snapshot = ctx.services.live.snapshot
    runner = ctx.services.queries.for_secrets(snapshot.secrets)
    if runner is None or "db_query" not in snapshot.tools:
        raise NotFound(
            "db_query is not configured: set DB_QUERY_URL or DATABASE_URL and [DB_QUERY] tables"
        )
    try:
        settings = QuerySettings(snapshot.config.db_query)
    except ValueError as exc:
        raise Internal(f"[DB_QUERY] is not usable: {exc}") from None

    async def run(principal: Principal) -> dict[str, Any]:
        if principal.kind == "anonymous":
            raise Unauthenticated(OPEN_MODE_DB_QUERY)
        await ctx.services.router.admit(principal, "db_query")
        max_rows = params.max_rows if isinstance(params.max_rows, int) else None
        return await runner.run(params.sql, settings, max_rows)

    return decode_result(DbQueryResult, await _audited(ctx, params, "db.query", run))


# authentication --------------------------------------------------------------------------
async def auth_login(ctx: CallContext, params: LoginParams) -> LoginResult:
    caller = params.caller
    session = await ctx.services.sessions.login(
        params.username, params.password, caller.ip, caller.user_agent
    )
    return decode_result(LoginResult, session)


async def auth_verify(ctx: CallContext, params: Sealed) -> VerifyResult:
    principal = await principal_of(ctx, params)
    verified = {**principal.to_wire(), "auth_enabled": await ctx.services.accounts.refresh()}
    return decode_result(VerifyResult, verified)


async def auth_logout(ctx: CallContext, params: Sealed) -> Ok:
    credential = params.caller.credential
    if not isinstance(credential, str) or not credential:
        raise InvalidParams("there is no session to end")
    return Ok(ok=await ctx.services.sessions.logout(credential, params.caller.ip))


# the caller's own usage and budget (issue 28: the MCP resource sealgate://usage/me) ------
async def usage_mine(ctx: CallContext, params: UsageMineParams) -> UsageMineResult:
    """Whose usage is the credential's principal alone: no parameter names anyone. Rows
    still queued for the database are written first, so a call just made is counted."""
    principal = await principal_of(ctx, params)
    since = month_start()
    await ctx.services.ledger.flush()
    figures = await ctx.services.storage.usage_of(since, principal.name, principal.user_id)
    spent = await ctx.services.limits.spent(principal.key)
    budget = principal.role.monthly_budget_usd
    return UsageMineResult(
        principal=principal.name,
        role=principal.role.name,
        since=since,
        spent_usd=round(spent, 8),
        monthly_budget_usd=budget,
        budget_left_usd=None if budget is None else round(max(0.0, budget - spent), 8),
        requests_per_min=principal.role.requests_per_min,
        **figures,
    )


# LLM calls as tasks (issue 28 item 5: the MCP tasks extension) --------------------------
async def tasks_start(ctx: CallContext, params: LlmParams) -> TaskInfo:
    """The call runs on its own in the guardian (not tied to this connection), owned by the
    credential's principal; refusals are audited as for `llm.complete`."""
    principal = await principal_of(ctx, params)
    router, request = ctx.services.router, to_map(params)

    async def run() -> dict[str, Any]:
        return await _audited(
            ctx, params, "llm.complete", lambda caller: router.complete(request, caller)
        )

    return decode_result(TaskInfo, await ctx.services.call_tasks.start(principal.key, run))


async def tasks_get(ctx: CallContext, params: TaskRefParams) -> TaskInfo:
    principal = await principal_of(ctx, params)
    view = await ctx.services.call_tasks.get(principal.key, params.task_id)
    return decode_result(TaskInfo, view)


async def tasks_cancel(ctx: CallContext, params: TaskRefParams) -> TaskInfo:
    principal = await principal_of(ctx, params)
    view = await ctx.services.call_tasks.cancel(principal.key, params.task_id)
    return decode_result(TaskInfo, view)


# token counts (issue 27: /v1/messages/count_tokens) ---------------------------------------
async def llm_count_tokens(ctx: CallContext, params: CountTokensParams) -> CountTokensResult:
    router, request = ctx.services.router, to_map(params)
    answer = await _audited(
        ctx, params, "llm.count_tokens", lambda principal: router.count_tokens(request, principal)
    )
    return decode_result(CountTokensResult, answer)
