"""Prometheus metrics of the sandbox (`GET /metrics`, admin credential only), and the
last-hour counts on the status page.

A registry of our own, not the process-global one, so nothing unexpected is exported.
Route labels come from a fixed list, so a scanner cannot blow up the label cardinality.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.contract_results import EmbedResult, LlmResult, SearchResult
from protocol.errors import SealGateError
from sandbox.json_response import JSONResponse
from sandbox.middleware import content_type

ROUTES = (
    "/mcp",
    "/sse",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/messages/count_tokens",
    "/v1/messages",
    "/v1/responses",
    "/v1/models",
    "/api",
    "/auth/login",
    "/auth/logout",
    "/healthz",
    "/openapi.json",
    "/metrics",
)


def route_of(path: str) -> str:
    if path == "/":
        return "/"
    for route in ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sealgate_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sealgate_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
        )
        self.sealed = Histogram(
            "sealgate_sealed_call_seconds", "Sealed RPC latency", ["method"], registry=self.registry
        )
        self.provider_errors = Counter(
            "sealgate_provider_errors",
            "Failed provider attempts",
            ["provider"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "sealgate_fallbacks",
            "Calls answered after a fallback",
            ["provider"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "sealgate_tokens",
            "Tokens by model and direction",
            ["model", "direction"],
            registry=self.registry,
        )
        self.cost = Counter("sealgate_cost_usd", "Cost by model", ["model"], registry=self.registry)
        self.streams = Gauge(
            "sealgate_open_streams",
            "Open SSE and streaming responses",
            ["route"],
            registry=self.registry,
        )
        self.guardian = Gauge(
            "sealgate_guardian_queue",
            "The guardian's background queues and task restarts, as of this scrape",
            ["figure"],
            registry=self.registry,
        )
        self.recent: collections.deque[tuple[float, bool]] = collections.deque(maxlen=100_000)
        self._children: dict[tuple[object, ...], Any] = {}

    def child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once per set of values: prometheus_client
        checks the values and takes a lock on every call, several times per answer."""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def guardian_figures(self, queues: Any) -> None:
        """From the guardian's `health`: usage_ledger_pending/capacity/dropped, task_restarts."""
        if not isinstance(queues, dict):
            return
        for figure, value in queues.items():
            if isinstance(figure, str) and isinstance(value, int) and len(figure) <= 64:
                self.guardian.labels(figure).set(value)

    def sealed_result(
        self,
        method: str,
        seconds: float,
        result: LlmResult | EmbedResult | SearchResult | None,
        error: bool,
    ) -> None:
        self.child(self.sealed, method).observe(seconds)
        self.recent.append((time.monotonic(), error))
        if result is None:
            return
        path = result.fallback_path if isinstance(result, LlmResult | SearchResult) else []
        for step in path:
            if not step.error.startswith("skipped"):
                self.child(self.provider_errors, step.provider).inc()
        if path:
            self.child(self.fallbacks, result.provider).inc()
        if isinstance(result, SearchResult) or not result.model:
            return
        output = result.usage.output_tokens
        self.child(self.tokens, result.model, "input").inc(result.usage.input_tokens)
        self.child(self.tokens, result.model, "output").inc(
            output if isinstance(output, int) else 0
        )
        if isinstance(result, LlmResult) and result.cost_usd:
            self.child(self.cost, result.model).inc(result.cost_usd)

    def last_hour(self) -> tuple[int, int]:
        """(calls, errors) of sealed calls in the last hour."""
        cutoff = time.monotonic() - 3600
        while self.recent and self.recent[0][0] < cutoff:
            self.recent.popleft()
        errors = sum(1 for _, failed in self.recent if failed)
        return len(self.recent), errors


#: Label values for the request counter. Any other method string becomes "other": a client
#: chooses the method, and every new label value is a time series kept for ever.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


class MetricsMiddleware:
    """Counts and times every HTTP request; tracks open event streams."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        route = route_of(scope["path"])
        started = time.perf_counter()
        status = 500
        streaming = False

        async def observed_send(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                if content_type(message).startswith(b"text/event-stream"):
                    streaming = True
                    metrics.child(metrics.streams, route).inc()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if streaming:
                metrics.child(metrics.streams, route).dec()
            metrics.child(metrics.requests, route, method_label(scope["method"]), str(status)).inc()
            metrics.child(metrics.latency, route).observe(time.perf_counter() - started)


OPEN_MODE_METRICS = (
    "/metrics needs an admin credential, even in open mode: add a user with"
    " `sealgate-ctl users add NAME --role admin` and send its token"
)


async def metrics_endpoint(request: Request) -> Response:
    principal = request.scope.get("state", {}).get("principal")
    if isinstance(principal, dict) and principal.get("kind") == "anonymous":
        # Open mode serves local tools, never the operator's view of the gateway.
        return JSONResponse(
            {"error": {"code": "unauthenticated", "message": OPEN_MODE_METRICS}},
            401,
            headers={"www-authenticate": 'Bearer realm="sealgate"'},
        )
    if not isinstance(principal, dict) or not principal.get("admin"):
        return JSONResponse(
            {"error": {"code": "forbidden", "message": "/metrics needs an admin credential"}}, 403
        )
    metrics: Metrics = request.app.state.metrics
    try:
        health = await request.app.state.link.health(timeout=2.0)
    except SealGateError:
        pass  # the guardian is away: its figures keep their last values
    else:
        metrics.guardian_figures(health.queues)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
