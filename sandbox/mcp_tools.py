"""The MCP server and its tools. Every tool that needs the guardian goes through the link.

Tools register only when the guardian reports them active (key gating); `health_check`,
`list_active_tools` and `get_model_info` are always there. When the guardian's active set
changes (`config.changed`), `sync_tools` adds and removes tools and prompts and tells clients:
`tools/list_changed` and `prompts/list_changed` on open sessions, the same events on
`subscriptions/listen` streams. What each tool declares about itself is in `mcp_describe`,
prompts in `mcp_prompts`, resources in `mcp_resources`, tasks in `mcp_tasks` (docs/MCP.md).
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
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)
from mcp_types import SubscriptionsListenRequestParams

from protocol import __version__
from protocol.contract_results import LlmResult, to_wire
from protocol.errors import ErrorCode, RPCError
from protocol.pyfun import PyfunConfig, ToolConfig
from sandbox.caller import Proxies, caller_of
from sandbox.errors import SealedToolError
from sandbox.guardian_link import ActiveNames, Caller, GuardianLink, stream_result
from sandbox.hub_compat import ALIAS_NAMES, drop_empty, first_given, original_listing
from sandbox.hubstate import HubState, cache_grant, cache_key
from sandbox.mcp_describe import (
    BUILT_IN,
    ICONS,
    HealthCheckOutput,
    ListActiveToolsOutput,
    ListedModel,
    ToolDescription,
    describe_db,
    describe_llm,
    describe_search,
)
from sandbox.mcp_prompts import build_prompt, completer, prompt_names
from sandbox.mcp_resources import SealGateResources
from sandbox.mcp_tasks import SealGateTasks
from sandbox.mcp_upstream import UpstreamTools
from sandbox.tool_args import names_problem, problem_of
from sandbox.tracing_spans import TracingMCP

logger = logging.getLogger("sealgate.sandbox.mcp")

ToolFunction = Callable[..., Awaitable[ToolResult]]
#: A tool to register: its function, its description, and what it declares about itself.
Wanted = tuple[ToolFunction, str, ToolDescription]
PROGRESS_INTERVAL_S = 0.25
#: Open `subscriptions/listen` streams at most (each holds a connection and a small buffer).
MAX_LISTENERS = 1024
#: What the server tells a model it is for (`instructions`, on every transport).
INSTRUCTIONS = (
    "SealGate is a gateway to several LLM and web-search providers. Use llm_complete (or a"
    " task tool such as summarize) to ask a model, web_search to search the web, and"
    " get_model_info or list_active_tools to see what is configured. Provider keys stay"
    " inside SealGate: never ask the user for one. Calls count against the caller's own"
    " limits and budget."
)


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
        #: Stateless (2026-07-28) clients hear of changes on `subscriptions/listen` streams
        #: (`serve_listen`), which this bus feeds.
        self.bus = InMemorySubscriptionBus()

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

    async def notify_changed(self, lists: frozenset[str]) -> int:
        """Send `notifications/{tools,prompts,resources}/list_changed` for each list that
        changed to every open session, and the same events to every listen stream; answers
        how many sessions were told."""
        if "tools" in lists:
            await self.bus.publish(ToolsListChanged())
        if "prompts" in lists:
            await self.bus.publish(PromptsListChanged())
        if "resources" in lists:
            await self.bus.publish(ResourcesListChanged())
        told = 0
        for key, session in list(self.sessions.items()):
            try:
                if "tools" in lists:
                    await session.send_tool_list_changed()
                if "prompts" in lists:
                    await session.send_prompt_list_changed()
                if "resources" in lists:
                    await session.send_resource_list_changed()
                told += 1
            except Exception as exc:  # a closed session: forget it
                logger.debug("could not notify an MCP session: %r", exc)
                self.sessions.pop(key, None)
        for kind in sorted(lists):  # one line per list ("tool list changed: told 2 ...")
            logger.info("%s list changed: told %d MCP session(s)", kind.removesuffix("s"), told)
        return told


def serve_listen(mcp: FastMCP, bus: InMemorySubscriptionBus) -> None:
    """Serve `subscriptions/listen` (2026-07-28): a stateless client's change stream.

    fastmcp 4.1 does not register the SDK's handler itself, so it goes on fastmcp's
    low-level server, whose capabilities then say `listChanged` to modern clients."""
    handler = ListenHandler(bus, max_subscriptions=MAX_LISTENERS)
    mcp._mcp_server.add_request_handler(
        "subscriptions/listen", SubscriptionsListenRequestParams, handler
    )


class StableOrder(Middleware):
    """Every list in one order, by name (resources by URI), whatever order the components
    were registered in: a reload appends, and clients diff or cache the lists."""

    async def on_list_tools(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        return sorted(await call_next(context), key=lambda tool: tool.name)

    async def on_list_prompts(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        return sorted(await call_next(context), key=lambda prompt: prompt.name)

    async def on_list_resources(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        return sorted(await call_next(context), key=lambda resource: str(resource.uri))

    async def on_list_resource_templates(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        return sorted(await call_next(context), key=lambda template: template.uri_template)


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
        #: The prompts registered now, with the tool configuration each was built from.
        self.prompts: dict[str, ToolConfig] = {}
        #: The function behind each registered tool, for the JSON API.
        self.functions: dict[str, ToolFunction] = {}
        #: Tools whose answer is text (LLM and search): `/api` answers that text as `result`.
        self.text_tools: frozenset[str] = frozenset()
        self.sessions = SessionRegistry()
        self._tasks: set[asyncio.Task[int]] = set()

    def wanted(self, active: ActiveNames) -> dict[str, Wanted]:
        tools: dict[str, Wanted] = {
            "health_check": (
                self.health_check,
                "Check that SealGate and its guardian answer; returns versions and uptime.",
                BUILT_IN["health_check"],
            ),
            "list_active_tools": (
                self.list_active_tools,
                "List the active tools, LLM and search providers, and models (names only).",
                BUILT_IN["list_active_tools"],
            ),
            "get_model_info": (
                self.get_model_info,
                "Limits, costs and capabilities of the configured models, or of one model.",
                BUILT_IN["get_model_info"],
            ),
        }
        if "llm_complete" in active.tools:
            tools["llm_complete"] = (
                self.llm_complete,
                "Complete a prompt with an LLM; SealGate picks the provider and falls back"
                " along its chain when one fails.",
                describe_llm("llm_complete"),
            )
        for name in active.tools:
            config = self.config.tools.get(name)
            if config is None or not config.active or name in tools:
                continue
            if config.provider_type == "llm":
                tools[name] = (
                    self._llm_tool(config),
                    config.description or f"LLM tool {name}.",
                    describe_llm(name),
                )
            elif config.provider_type == "search":
                tools[name] = (
                    self._search_tool(name),
                    config.description or "Search the web.",
                    describe_search(name),
                )
        if "db_query" in active.tools:
            tools["db_query"] = (
                self.db_query,
                "Run one read-only SELECT over the allowlisted tables (target 'guardian'), or"
                " over this sandbox's own hub_state and tool_cache (target 'hub', admins only).",
                describe_db(),
            )
        if "web_search" in active.tools and "web_search" not in tools:
            tools["web_search"] = (
                self._search_tool("web_search"),
                "Search the web.",
                describe_search("web_search"),
            )
        return tools

    def sync_tools(self, active: ActiveNames | None = None) -> None:
        """Register what is usable now and remove what no longer is; tell MCP clients."""
        before = set(self.registered)
        self._sync(active)
        changed = {"tools"} if self.registered != before else set()
        if self._sync_prompts(active or self.link.active):
            changed.add("prompts")
        if changed and active is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nobody to tell
                task = asyncio.get_running_loop().create_task(
                    self.sessions.notify_changed(frozenset(changed))
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def upstream_changed(self, servers: list[str]) -> None:
        """The guardian says upstream tools appeared or went (`mcp.changed`): every open
        session and listen stream hears `tools/list_changed` and lists again (the listing
        itself is asked of the guardian per caller: `sandbox.mcp_upstream`)."""
        with contextlib.suppress(RuntimeError):  # no running loop: nobody to tell
            task = asyncio.get_running_loop().create_task(
                self.sessions.notify_changed(frozenset({"tools"}))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _sync_prompts(self, active: ActiveNames) -> bool:
        """Register a prompt per active LLM tool with an instruction (again when the
        instruction changed); answers whether the prompt list changed."""
        wanted = {name: self.config.tools[name] for name in prompt_names(self.config, active)}
        changed = False
        for name in sorted(self.prompts):
            if wanted.get(name) != self.prompts[name]:
                self.mcp.local_provider.remove_prompt(name)
                del self.prompts[name]
                changed = True
        for name, config in wanted.items():
            if name not in self.prompts:
                self.mcp.add_prompt(build_prompt(config))
                self.prompts[name] = config
                changed = True
        return changed

    def _sync(self, active: ActiveNames | None) -> None:
        wanted = self.wanted(active or self.link.active)
        for name in sorted(self.registered - set(wanted)):
            self.mcp.local_provider.remove_tool(name)
            self.registered.discard(name)
            logger.info("tool %s removed (its providers are no longer active)", name)
        self.functions = {name: function for name, (function, _, _) in wanted.items()}
        self.text_tools = frozenset(
            name
            for name in wanted
            if name in ("llm_complete", "web_search")
            or (name in self.config.tools and self.config.tools[name].provider_type != "db")
        )
        for name, (function, description, about) in wanted.items():
            if name not in self.registered:
                tool = Tool.from_function(
                    function,
                    name=name,
                    title=about.title,
                    description=description,
                    annotations=about.annotations,
                    icons=[about.icon],
                    output_schema=about.schema,
                )
                self.mcp.add_tool(tool)
                self.registered.add(name)
        if active is not None and wanted.keys() <= {
            "health_check",
            "list_active_tools",
            "get_model_info",
        }:
            logger.warning("no provider is active: serving the built-in tools only")

    def llm_tool_names(self) -> set[str]:
        """The registered tools that make an LLM call (those that may run as tasks)."""
        return {
            name
            for name in self.registered
            if name == "llm_complete"
            or (name in self.config.tools and self.config.tools[name].provider_type == "llm")
        }

    def state(self) -> dict[str, Any]:
        """The sandbox's own view, for the status resource: names only."""
        active = self.link.active
        return {
            "guardian_connected": self.link.connected,
            "tools": sorted(self.registered),
            "prompts": sorted(self.prompts),
            "llm_providers": list(active.llm_providers),
            "search_providers": list(active.search_providers),
        }

    # built-in tools ------------------------------------------------------------------------
    async def health_check(self) -> ToolResult:
        try:
            guardian = await self.link.health(timeout=5.0)
        except RPCError as exc:
            raise tool_error(exc) from None
        data = HealthCheckOutput(status="ok", sandbox_version=__version__, guardian=guardian)
        return result(
            msgspec.to_builtins(data), f"SealGate is healthy; guardian up {guardian.uptime_s} s"
        )

    async def list_active_tools(self) -> ToolResult:
        active = self.link.active
        tools = sorted(self.registered)
        # The same list as `/` shows, each marked: a model of a provider without a key is
        # listed (it is configured) but cannot be used until its key is added.
        models = [
            ListedModel(
                id=model.id, provider=model.provider, active=model.provider in active.llm_providers
            )
            for model in sorted(self.config.models.values(), key=lambda m: m.id)
        ]
        original = original_listing(
            tools=tools,
            llm_providers=list(active.llm_providers),
            search_providers=list(active.search_providers),
            usable_models=[m.id for m in models if m.active],
        )
        data = ListActiveToolsOutput(
            tools=tools,
            llm_providers=list(active.llm_providers),
            search_providers=list(active.search_providers),
            models=models,
            guardian_connected=self.link.connected,
            # What each tool takes, so a client (the desktop app) can build its form; the
            # original hub's names for the same parameters are accepted but not listed.
            tool_params={
                name: _canonical_params(function)
                for name, function in sorted(self.functions.items())
            },
            **original,
        )
        return result(msgspec.to_builtins(data))

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
            data = to_wire(found)
            return with_receipt(result(data, "\n\n".join(lines) or "no results"), data)

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
            await self.hub.remember(key, principal["principal"], tool, without_receipt(data))
        return with_receipt(result(data, answer.text), data)

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
    mcp = FastMCP(
        config.hub.name,
        version=__version__,
        instructions=INSTRUCTIONS,
        icons=[ICONS["hub"]],
    )
    tools = SealGateTools(mcp, link, config, hub)
    mcp.add_middleware(tools.sessions)
    mcp.add_middleware(StableOrder())
    serve_listen(mcp, tools.sessions.bus)
    mcp.add_completion_handler(completer(lambda: tools.config, lambda: tools.link.active))
    SealGateResources(link, lambda: current_caller(tools.proxies), tools.state).register(mcp)
    mcp.add_extension(
        SealGateTasks(link, lambda: current_caller(tools.proxies), tools.llm_tool_names)
    )
    # upstream MCP servers' approved tools, listed per caller and relayed (docs/UPSTREAM_MCP.md)
    mcp.add_provider(
        UpstreamTools(
            link,
            lambda: current_caller(tools.proxies),
            lambda: set(tools.registered),
            lambda: bool(tools.config.mcp_servers),
        )
    )
    mcp.add_middleware(ArgumentWording(tools))
    mcp.add_middleware(TracingMCP())  # a server span per tool call (sandbox.tracing_spans)
    tools.sync_tools()
    return mcp, tools


# receipts (docs/AUDIT.md) --------------------------------------------------------------------
RECEIPT_FIELDS = ("receipt_id", "receipt")


def without_receipt(data: dict[str, Any]) -> dict[str, Any]:
    """A cached answer is no sealed call: it carries no receipt (nobody was billed)."""
    return {k: v for k, v in data.items() if k not in RECEIPT_FIELDS}


def with_receipt(answer: ToolResult, data: dict[str, Any]) -> ToolResult:
    """The call's receipt as the tool result's `_meta` too (`sealgate/receipt`,
    `sealgate/receipt_id`), where MCP clients keep metadata apart from the answer."""
    if not data.get("receipt"):
        return answer
    answer.meta = {**(answer.meta or {}), **{f"sealgate/{k}": data[k] for k in RECEIPT_FIELDS}}
    return answer
