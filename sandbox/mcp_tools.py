"""The MCP server and its tools. Every tool that needs the guardian goes through the link.

Tools register only when the guardian reports them active (key gating); `health_check`,
`list_active_tools` and `get_model_info` are always there. When the guardian's active set
changes (`config.changed`), `sync_tools` adds and removes tools and fastmcp tells connected
clients with `tools/list_changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ValidationError as FastMCPValidationError
from fastmcp.server.dependencies import get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import Tool, ToolResult

from protocol import __version__
from protocol.contract_results import LlmResult, to_wire
from protocol.errors import ErrorCode, RPCError
from protocol.pyfun import PyfunConfig, ToolConfig
from sandbox.caller import Proxies, caller_of
from sandbox.errors import SealedToolError
from sandbox.guardian_link import ActiveNames, Caller, GuardianLink, stream_result
from sandbox.hub_compat import ALIAS_NAMES, drop_empty, first_given, original_listing
from sandbox.hubstate import HubState, cache_grant, cache_key
from sandbox.tool_args import names_problem, problem_of
from sandbox.tracing_spans import TracingMCP

logger = logging.getLogger("sealgate.sandbox.mcp")

ToolFunction = Callable[..., Awaitable[ToolResult]]
PROGRESS_INTERVAL_S = 0.25


def result(data: dict[str, Any], text: str | None = None) -> ToolResult:
    """A tool answer: the text as text content, the whole map as structured content."""
    return ToolResult(
        content=text if text is not None else json.dumps(data, sort_keys=True),
        structured_content=data,
    )


def tool_error(exc: RPCError) -> SealedToolError:
    """An MCP tool error whose message names the cause (and every provider tried); the code
    stays typed for `POST /api`."""
    return SealedToolError.of(exc)


def _canonical_params(function: ToolFunction) -> list[str]:
    """A tool's own parameter names, without the original hub's aliases (`prompt` is one
    only for a tool that takes `query`)."""
    names = [p for p in inspect.signature(function).parameters if p != "ctx"]
    aliases = ALIAS_NAMES | ({"prompt"} if "query" in names else set())
    return [p for p in names if p not in aliases]


def current_principal() -> dict[str, Any] | None:
    """What the auth gate learned from the guardian about this request's caller, if anything."""
    try:
        request = get_http_request()
    except RuntimeError:
        return None
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, dict) else None


def wants_progress(ctx: Context) -> bool:
    """Whether the MCP client sent a progress token with this call."""
    context = ctx.request_context
    meta = context.meta if context is not None else None
    return meta is not None and meta.get("progressToken") is not None


def current_caller(proxies: Proxies) -> Caller:
    """The HTTP client behind the current MCP request, credential included, as received."""
    try:
        request = get_http_request()
    except RuntimeError:
        return Caller(ip="", user_agent="")
    return caller_of(request.scope, proxies)


class SessionRegistry(Middleware):
    """Remembers the open MCP sessions, to tell them when the tool list changes.

    fastmcp sends `tools/list_changed` only from inside a request; a reload happens outside
    any. The SDK hands out one session object per request, so they are kept by session id
    (the latest wins). A session is forgotten when its connection closes (the SDK unwinds the
    connection's exit stack), so the count logged after a reload is of open sessions only.
    Stateless (2026-07-28) requests have no channel to notify and are not kept at all.
    """

    MAX_SESSIONS = 10_000
    _MARK = "sealgate.session_registry"

    def __init__(self) -> None:
        self.sessions: dict[str, Any] = {}

    async def on_message(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        fastmcp_context = context.fastmcp_context
        if fastmcp_context is not None:
            with contextlib.suppress(RuntimeError, AttributeError):
                self._remember(fastmcp_context.session_id, fastmcp_context.session)
        return await call_next(context)

    def _remember(self, key: str, session: Any) -> None:
        connection = getattr(session, "_connection", None)
        if connection is None or not connection.has_standalone_channel:
            return
        self.sessions.pop(key, None)
        self.sessions[key] = session
        if not connection.state.get(self._MARK):
            connection.state[self._MARK] = True
            connection.exit_stack.callback(self.forget, key, connection)
        while len(self.sessions) > self.MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))

    def forget(self, key: str, connection: Any) -> None:
        """The session's connection closed: drop it (unless the id now names another)."""
        session = self.sessions.get(key)
        if session is not None and getattr(session, "_connection", None) is connection:
            del self.sessions[key]

    async def notify_tools_changed(self) -> int:
        told = 0
        for key, session in list(self.sessions.items()):
            try:
                await session.send_tool_list_changed()
                told += 1
            except Exception as exc:  # a closed session: forget it
                logger.debug("could not notify an MCP session: %r", exc)
                self.sessions.pop(key, None)
        logger.info("tool list changed: told %d MCP session(s)", told)
        return told


class ArgumentWording(Middleware):
    """Bad tool arguments answer in the JSON API's words (`invalid_params: missing
    parameter(s) for TOOL: prompt`), not pydantic's multi-line text with a link; and every
    typed refusal is an error result that carries its code (`SealedToolError.to_result`)."""

    def __init__(self, tools: SealGateTools) -> None:
        self.tools = tools

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        try:
            return await self._checked(context, call_next)
        except SealedToolError as exc:
            return exc.to_result()

    async def _checked(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        name = str(getattr(context.message, "name", ""))
        arguments = getattr(context.message, "arguments", None) or {}
        if isinstance(arguments, dict) and "" in arguments.values():
            # The original hub's clients send "" for "the default" (hub_compat).
            arguments = drop_empty(arguments)
            context = context.copy(
                message=context.message.model_copy(update={"arguments": arguments})
            )
        function = self.tools.functions.get(name)
        if function is not None and isinstance(arguments, dict):
            problem = names_problem(name, function, arguments)
            if problem is not None:
                raise SealedToolError(ErrorCode.INVALID_PARAMS, problem)
        try:
            return await call_next(context)
        except FastMCPValidationError as exc:
            problem = problem_of(exc, name) or "the arguments do not fit the tool's schema"
            raise SealedToolError(ErrorCode.INVALID_PARAMS, problem) from None


class SealGateTools:
    """Builds the tool functions around one guardian link and keeps them registered."""

    def __init__(
        self, mcp: FastMCP, link: GuardianLink, config: PyfunConfig, hub: HubState | None = None
    ) -> None:
        self.mcp = mcp
        self.link = link
        self.config = config
        self.hub = hub
        self.proxies = Proxies.parse(config.hub.trusted_proxies)
        self.registered: set[str] = set()
        #: The function behind each registered tool, for the JSON API.
        self.functions: dict[str, ToolFunction] = {}
        #: Tools whose answer is text (LLM and search): `/api` answers that text as `result`.
        self.text_tools: frozenset[str] = frozenset()
        self.sessions = SessionRegistry()
        self._tasks: set[asyncio.Task[int]] = set()

    def wanted(self, active: ActiveNames) -> dict[str, tuple[ToolFunction, str]]:
        tools: dict[str, tuple[ToolFunction, str]] = {
            "health_check": (
                self.health_check,
                "Check that SealGate and its guardian answer; returns versions and uptime.",
            ),
            "list_active_tools": (
                self.list_active_tools,
                "List the active tools, LLM and search providers, and models (names only).",
            ),
            "get_model_info": (
                self.get_model_info,
                "Limits, costs and capabilities of the configured models, or of one model.",
            ),
        }
        if "llm_complete" in active.tools:
            tools["llm_complete"] = (
                self.llm_complete,
                "Complete a prompt with an LLM; SealGate picks the provider and falls back"
                " along its chain when one fails.",
            )
        for name in active.tools:
            config = self.config.tools.get(name)
            if config is None or not config.active or name in tools:
                continue
            if config.provider_type == "llm":
                tools[name] = (self._llm_tool(config), config.description or f"LLM tool {name}.")
            elif config.provider_type == "search":
                tools[name] = (self._search_tool(name), config.description or "Search the web.")
        if "db_query" in active.tools:
            tools["db_query"] = (
                self.db_query,
                "Run one read-only SELECT over the allowlisted tables (target 'guardian'), or"
                " over this sandbox's own hub_state and tool_cache (target 'hub', admins only).",
            )
        if "web_search" in active.tools and "web_search" not in tools:
            tools["web_search"] = (self._search_tool("web_search"), "Search the web.")
        return tools

    def sync_tools(self, active: ActiveNames | None = None) -> None:
        """Register what is usable now and remove what no longer is; tell MCP clients."""
        before = set(self.registered)
        self._sync(active)
        if self.registered != before and active is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nobody to tell
                task = asyncio.get_running_loop().create_task(self.sessions.notify_tools_changed())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _sync(self, active: ActiveNames | None) -> None:
        wanted = self.wanted(active or self.link.active)
        for name in sorted(self.registered - set(wanted)):
            self.mcp.local_provider.remove_tool(name)
            self.registered.discard(name)
            logger.info("tool %s removed (its providers are no longer active)", name)
        self.functions = {name: function for name, (function, _) in wanted.items()}
        self.text_tools = frozenset(
            name
            for name in wanted
            if name in ("llm_complete", "web_search")
            or (name in self.config.tools and self.config.tools[name].provider_type != "db")
        )
        for name, (function, description) in wanted.items():
            if name not in self.registered:
                self.mcp.add_tool(Tool.from_function(function, name=name, description=description))
                self.registered.add(name)
        if active is not None and wanted.keys() <= {
            "health_check",
            "list_active_tools",
            "get_model_info",
        }:
            logger.warning("no provider is active: serving the built-in tools only")

    # built-in tools ------------------------------------------------------------------------
    async def health_check(self) -> ToolResult:
        try:
            guardian = await self.link.health(timeout=5.0)
        except RPCError as exc:
            raise tool_error(exc) from None
        data = {"status": "ok", "sandbox_version": __version__, "guardian": to_wire(guardian)}
        return result(data, f"SealGate is healthy; guardian up {guardian.uptime_s} s")

    async def list_active_tools(self) -> ToolResult:
        active = self.link.active
        data: dict[str, Any] = {
            "tools": sorted(self.registered),
            "llm_providers": list(active.llm_providers),
            "search_providers": list(active.search_providers),
            # The same list as `/` shows, each marked: a model of a provider without a key
            # is listed (it is configured) but cannot be used until its key is added.
            "models": [
                {
                    "id": model.id,
                    "provider": model.provider,
                    "active": model.provider in active.llm_providers,
                }
                for model in sorted(self.config.models.values(), key=lambda m: m.id)
            ],
            "guardian_connected": self.link.connected,
            # What each tool takes, so a client (the desktop app) can build its form; the
            # original hub's names for the same parameters are accepted but not listed.
            "tool_params": {
                name: _canonical_params(function)
                for name, function in sorted(self.functions.items())
            },
        }
        data.update(
            original_listing(
                tools=data["tools"],
                llm_providers=data["llm_providers"],
                search_providers=data["search_providers"],
                usable_models=[m["id"] for m in data["models"] if m["active"]],
            )
        )
        return result(data)

    async def get_model_info(
        self, model: str | None = None, model_name: str | None = None
    ) -> ToolResult:
        """`model_name` is the original hub's name for `model`."""
        try:
            info = await self.link.models_info(
                current_caller(self.proxies), first_given(model, model_name)
            )
        except RPCError as exc:
            raise tool_error(exc) from None
        return result(to_wire(info))

    async def llm_complete(
        self,
        prompt: str,
        ctx: Context,
        provider: str | None = None,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        provider_name: str | None = None,
    ) -> ToolResult:
        """`provider_name` is the original hub's name for `provider`."""
        return await self._complete(
            ctx,
            "llm_complete",
            prompt,
            system=system or None,
            provider=first_given(provider, provider_name),
            model=model or None,
            max_tokens=max_tokens,
            temperature=temperature,
        )

    async def db_query(
        self, sql: str, max_rows: int | None = None, target: str = "guardian"
    ) -> ToolResult:
        try:
            if target == "hub":
                principal = current_principal()
                if principal is not None and principal.get("kind") == "anonymous":
                    raise SealedToolError(
                        ErrorCode.UNAUTHENTICATED,
                        "db_query needs a signed-in user, even in open mode:"
                        " add one with `sealgate-ctl users add NAME` and send its token",
                    )
                if self.hub is None or principal is None or not principal.get("admin"):
                    raise SealedToolError(ErrorCode.FORBIDDEN, "target 'hub' is for admins only")
                data = await self.hub.query(sql, max_rows)
            elif target == "guardian":
                answer = await self.link.db_query(current_caller(self.proxies), sql, max_rows)
                data = to_wire(answer)
            else:
                raise SealedToolError(ErrorCode.INVALID_PARAMS, "target is 'guardian' or 'hub'")
        except RPCError as exc:
            raise tool_error(exc) from None
        return result(data)

    # configured tools ----------------------------------------------------------------------
    def _llm_tool(self, config: ToolConfig) -> ToolFunction:
        async def run(
            prompt: str,
            ctx: Context,
            provider: str | None = None,
            model: str | None = None,
            max_tokens: int | None = None,
            temperature: float | None = None,
            provider_name: str | None = None,
        ) -> ToolResult:
            return await self._complete(
                ctx,
                config.name,
                prompt,
                provider=first_given(provider, provider_name),
                model=model or None,
                max_tokens=max_tokens,
                temperature=temperature,
            )

        return run

    def _search_tool(self, name: str) -> ToolFunction:
        async def run(
            query: str | None = None,
            max_results: int | None = None,
            provider: str | None = None,
            prompt: str | None = None,
            provider_name: str | None = None,
        ) -> ToolResult:
            """`prompt` and `provider_name` are the original hub's names (one form for
            every tool); one of `query` and `prompt` is needed."""
            text = first_given(query, prompt)
            if text is None:
                raise SealedToolError(
                    ErrorCode.INVALID_PARAMS, f"missing parameter(s) for {name}: query"
                )
            try:
                found = await self.link.search_web(
                    current_caller(self.proxies),
                    name,
                    text,
                    max_results=max_results,
                    provider=first_given(provider, provider_name),
                )
            except RPCError as exc:
                raise tool_error(exc) from None
            lines = [f"{r.title} - {r.url}\n{r.snippet}" for r in found.results]
            if isinstance(found.answer, str) and found.answer:
                lines.insert(0, found.answer)
            return result(to_wire(found), "\n\n".join(lines) or "no results")

        return run

    async def _complete(self, ctx: Context, tool: str, prompt: str, **options: Any) -> ToolResult:
        """Answer with the whole completion. A client that asked for progress (sent a
        progress token) gets the call streamed from the guardian and MCP progress as text
        arrives; any other gets one `llm.complete`, which costs less on both sides.

        Progress goes out for the first chunk and then at most every `PROGRESS_INTERVAL_S`:
        one notification per token would cost more than the call itself.
        """
        principal = current_principal()
        key = None
        grant = cache_grant(principal, tool)
        if options.get("temperature") == 0 and grant is not None and self.hub is not None:
            key = cache_key(grant, tool, {"prompt": prompt, **options})
            cached = await self.hub.cached(key)
            if cached is not None:
                return result({**cached, "cached": True}, cached.get("text", ""))
        if wants_progress(ctx):
            answer = await self._streamed(ctx, tool, prompt, options)
        else:
            try:
                answer = await self.link.llm_complete(
                    current_caller(self.proxies), tool, prompt, **options
                )
            except RPCError as exc:
                raise tool_error(exc) from None
        data = to_wire(answer)
        if key is not None and principal is not None and self.hub is not None:
            await self.hub.remember(key, principal["principal"], tool, data)
        return result(data, answer.text)

    async def _streamed(
        self, ctx: Context, tool: str, prompt: str, options: dict[str, Any]
    ) -> LlmResult:
        received = 0
        parts: list[str] = []
        reported = -PROGRESS_INTERVAL_S
        started = time.perf_counter()
        try:
            async with self.link.llm_stream(
                current_caller(self.proxies), tool, prompt, **options
            ) as stream:
                async for chunk in stream:
                    text = chunk.get("text", "") if isinstance(chunk, dict) else ""
                    parts.append(text if isinstance(text, str) else "")
                    received += len(parts[-1])
                    now = time.monotonic()
                    if now - reported >= PROGRESS_INTERVAL_S:
                        reported = now
                        await ctx.report_progress(received, message=f"{received} characters")
            data = stream_result(stream)
        except RPCError as exc:
            self.link.observe_stream(time.perf_counter() - started, None, True)
            raise tool_error(exc) from None
        self.link.observe_stream(time.perf_counter() - started, data, False)
        if data is None:
            raise SealedToolError(ErrorCode.INTERNAL, "the guardian sent no result")
        # the result's text stays empty on the socket: the chunks carried it
        return msgspec.structs.replace(data, text="".join(parts))


def build_mcp(
    config: PyfunConfig, link: GuardianLink, hub: HubState | None = None
) -> tuple[FastMCP, SealGateTools]:
    mcp = FastMCP(config.hub.name, version=__version__)
    tools = SealGateTools(mcp, link, config, hub)
    mcp.add_middleware(tools.sessions)
    mcp.add_middleware(ArgumentWording(tools))
    mcp.add_middleware(TracingMCP())  # a server span per tool call (sandbox.tracing_spans)
    tools.sync_tools()
    return mcp, tools
