"""The sandbox's ASGI application: routes and middleware declared in one place."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence

from fastmcp.server.http import create_sse_app
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route

from protocol.pyfun import PyfunError
from sandbox import anthropic_api, json_api, openai_api, receipts_api, responses_api
from sandbox.auth import AuthGate, VerifyCache, login, logout
from sandbox.caller import Proxies
from sandbox.grants_page import ROUTES as GRANTS_ROUTES
from sandbox.guardian_link import ActiveNames, GuardianLink
from sandbox.hubstate import HubState
from sandbox.mcp_tools import build_mcp
from sandbox.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from sandbox.middleware import BodyLimit, MountRootSlash, OneResponse, StreamCap
from sandbox.oauth import ROUTES as OAUTH_ROUTES
from sandbox.oauth import BearerChallenge, OAuthCORS, ScopeCheck, ServerInfo
from sandbox.openai_errors import OpenAIErrors
from sandbox.openapi import openapi_json
from sandbox.pages import healthz, status_page
from sandbox.replica_sessions import SseRelay, replica_http_app
from sandbox.request_guard import LOOPBACK_NAMES, HostPolicy, RequestGuard
from sandbox.settings import SandboxSettings, load_settings
from sandbox.tracing_spans import TracingMiddleware

logger = logging.getLogger("sealgate.sandbox")


def build_app(
    settings: SandboxSettings, link: GuardianLink, listen_hosts: Sequence[str]
) -> Starlette:
    """`listen_hosts`: the addresses the sandbox really listens on (its sockets' names)."""
    hub = settings.config.hub
    hub_state = HubState(
        settings.layout.hub_state_db,
        settings.config.db_sync.tool_cache_ttl_sec,
        settings.config.db_sync.max_cache_entries,
    )
    mcp, tools = build_mcp(settings.config, link, hub_state)
    # Host, Origin and content type are checked on every route but /healthz (RequestGuard);
    # the MCP SDK's own guard stays on both transports as a second line.
    origins = [*hub.allowed_origins, *hub.cors_origins]
    if settings.space_host:  # a Hugging Face Space: its own https origin
        origins.append(f"https://{settings.space_host}")
    policy = HostPolicy.build(
        listen_hosts=[*listen_hosts, settings.host],
        allowed_hosts=hub.allowed_hosts,
        allowed_origins=origins,
        space_host=settings.space_host,
    )
    # The SDK's guard takes None for "loopback names only", as RequestGuard decided above.
    allowed_hosts = (
        None
        if policy.hosts == LOOPBACK_NAMES
        else (sorted(policy.hosts) if policy.hosts is not None else ["*"])
    )
    allowed_origins = origins or None

    def on_active_change(active: ActiveNames) -> None:
        """The guardian (re)connected or reloaded: re-read our view of .pyfun (tool
        descriptions, models), then register and remove tools to match."""
        try:
            tools.config = load_settings(os.environ).config
        except PyfunError as exc:
            logger.error("the tool list changed, but .pyfun cannot be read here: %s", exc)
        tools.sync_tools(active)

    link.on_active_change(on_active_change)
    link.on_upstream_change(tools.upstream_changed)
    proxies = Proxies.parse(hub.trusted_proxies, space_host=settings.space_host)
    # any replica answers a session (sandbox/replica_sessions.py): signed session ids, and
    # legacy SSE messages relayed through the guardians
    mcp_http = replica_http_app(
        mcp,
        link,
        proxies,
        host_origin_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )
    mcp_sse = create_sse_app(
        mcp,
        message_path="/messages/",
        sse_path="/",
        host_origin_protection=True,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """Each part registers its close on one exit stack as it starts, so whatever
        started is closed, in reverse order, even when a later part fails to start."""
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(hub_state.close)  # closes what a failed open left
            await hub_state.open()
            link.start()  # serve at once: until the guardian answers, all but /healthz get 503
            stack.push_async_callback(link.close)
            await stack.enter_async_context(mcp_http.router.lifespan_context(app))
            yield

    tools.proxies = proxies
    verify_cache = VerifyCache()
    routes = [
        Route("/", status_page, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/auth/login", login, methods=["POST"]),
        Route("/auth/logout", logout, methods=["POST"]),
        Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
        Route("/v1/models", openai_api.models, methods=["GET"]),
        Route("/v1/embeddings", openai_api.embeddings, methods=["POST"]),
        Route("/v1/messages", anthropic_api.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic_api.count_tokens, methods=["POST"]),
        Route("/v1/responses", responses_api.responses, methods=["POST"]),
        Route("/v1/receipts/{receipt_id}", receipts_api.receipt, methods=["GET"]),
        Route("/api", json_api.api, methods=["POST"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Mount("/mcp", app=mcp_http),
        Mount("/sse", app=OneResponse(SseRelay(mcp_sse, link, proxies))),
        *OAUTH_ROUTES,
        *GRANTS_ROUTES,
    ]
    oauth_info = ServerInfo(link)
    metrics = Metrics()
    link.observer = metrics.sealed_result
    middleware = [
        Middleware(MetricsMiddleware, metrics=metrics),
        # every 401 on /mcp, /sse, /v1 and /api says where OAuth discovery starts
        Middleware(BearerChallenge, info=oauth_info),
        # every refusal under /v1 in OpenAI's shape, but Anthropic's under /v1/messages
        Middleware(OpenAIErrors, exclude=("/v1/messages",)),
        Middleware(anthropic_api.AnthropicErrors),
        Middleware(RequestGuard, policy=policy),
        Middleware(OAuthCORS),  # OAuth's cross-site endpoints: preflights and `*`
        Middleware(BodyLimit, max_bytes=hub.max_body_bytes, timeout_s=hub.body_timeout_s),
        Middleware(MountRootSlash, paths=("/mcp", "/sse")),
        Middleware(
            AuthGate, link=link, proxies=proxies, cache=verify_cache, space_host=settings.space_host
        ),
        Middleware(ScopeCheck, info=oauth_info),  # an OAuth token's scope per surface
        Middleware(StreamCap, limit=hub.max_streams_per_principal),
    ]
    if hub.cors_origins:  # for the web client; none by default
        middleware.insert(
            6,  # before BodyLimit
            Middleware(
                CORSMiddleware,
                allow_origins=list(hub.cors_origins),
                allow_credentials=True,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=[
                    "authorization",
                    "x-api-key",
                    "anthropic-version",
                    "anthropic-beta",
                    "content-type",
                    "mcp-session-id",
                    "mcp-protocol-version",
                ],
                expose_headers=["mcp-session-id"],
            ),
        )
    # outermost: one server span per request (sandbox.tracing_spans; a no-op when off)
    middleware.insert(0, Middleware(TracingMiddleware))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.link = link
    app.state.tools = tools
    app.state.hub_name = hub.name
    app.state.proxies = proxies
    app.state.verify_cache = verify_cache
    app.state.metrics = metrics
    app.state.oauth_info = oauth_info
    return app
