"""The sandbox's spans: one server span per HTTP request and per MCP tool call, its context
passed to the guardian in each sealed call's `trace` field, and the finished spans sent to
the guardian as `trace.spans` notifications (the sandbox has no network of its own: the
guardian exports both processes' spans).

Off until the guardian's `hello` says tracing is on; then a span costs two random ids, a
clock read and a small dict. An incoming W3C `traceparent` (an HTTP header, or an MCP call's
`_meta`) is honoured only from a client address in `[HUB] trace_trusted_clients`; any other
request starts a trace of its own, so nobody outside can graft their requests onto an
operator's traces. Spans carry names, routes, methods and statuses, never a body, a header
value, a query or a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from protocol.client import RPCClient, RPCStream
from protocol.contract import (
    MAX_SPAN_ATTRIBUTES,
    MAX_SPANS_PER_NOTIFICATION,
    TraceContext,
    to_map,
)
from protocol.messages import notification
from protocol.methods import METHODS

logger = logging.getLogger("sealgate.sandbox.tracing")

#: Spans kept while the guardian is away or slow; the oldest go first.
MAX_QUEUED = 1024
#: How often queued spans are sent.
FLUSH_EVERY_S = 0.5

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Settings:
    enabled: bool = False
    trusted: tuple[Network, ...] = ()

    @classmethod
    def from_hello(cls, tracing: Any) -> Settings:
        """The `tracing` field of the guardian's `hello` (absent or malformed: off)."""
        if not isinstance(tracing, dict) or tracing.get("enabled") is not True:
            return cls()
        trusted = []
        for text in tracing.get("trusted_clients") or ():
            with contextlib.suppress(ValueError, TypeError):
                trusted.append(ipaddress.ip_network(str(text), strict=False))
        return cls(True, tuple(trusted))

    def trusts(self, address: str | None) -> bool:
        if not address or not self.trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


@dataclass(slots=True)
class OpenSpan:
    """A span being timed; `end` queues it."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    parent_remote: bool
    name: str
    start_ns: int
    attributes: dict[str, str | int | float | bool] = field(default_factory=dict)
    error_type: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"

    def set(self, key: str, value: str | int | float | bool) -> None:
        if len(self.attributes) < MAX_SPAN_ATTRIBUTES or key in self.attributes:
            self.attributes[key[:64]] = value[:256] if isinstance(value, str) else value


class Tracer:
    """The sandbox's spans: settings from `hello`, the current span, the queue to send."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.queue: deque[dict[str, Any]] = deque(maxlen=MAX_QUEUED)
        self.current: ContextVar[OpenSpan | None] = ContextVar("sealgate_span", default=None)

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def configure(self, tracing: Any) -> None:
        settings = Settings.from_hello(tracing)
        if settings != self.settings:
            logger.info("tracing %s", "on" if settings.enabled else "off")
        self.settings = settings
        if not settings.enabled:
            self.queue.clear()

    @contextlib.contextmanager
    def server_span(
        self, name: str, *, traceparent: str | None, client: str | None
    ) -> Iterator[OpenSpan | None]:
        """A server span for the block (None when tracing is off, or the trusted client's
        context says not sampled): a child of `traceparent` when `client` is trusted, else
        the root of a new trace."""
        if not self.settings.enabled:
            yield None
            return
        parent = _parsed(traceparent) if self.settings.trusts(client) else None
        if parent is not None and not parent[2]:
            yield None  # the trusted client does not sample this trace
            return
        span = OpenSpan(
            trace_id=parent[0] if parent else os.urandom(16).hex(),
            span_id=os.urandom(8).hex(),
            parent_span_id=parent[1] if parent else None,
            parent_remote=parent is not None,
            name=name[:128],
            start_ns=time.time_ns(),
        )
        token = self.current.set(span)
        try:
            yield span
        except BaseException as exc:
            span.error_type = span.error_type or type(exc).__name__[:64]
            raise
        finally:
            self.current.reset(token)
            self._end(span)

    def _end(self, span: OpenSpan) -> None:
        record: dict[str, Any] = {
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent_remote": span.parent_remote,
            "name": span.name,
            "kind": "server",
            "start_ns": span.start_ns,
            "end_ns": time.time_ns(),
            "attributes": span.attributes,
        }
        if span.parent_span_id is not None:
            record["parent_span_id"] = span.parent_span_id
        if span.error_type is not None:
            record["error_type"] = span.error_type
        self.queue.append(record)

    def trace_field(self) -> dict[str, Any] | None:
        """The `trace` field of a sealed call made now (None outside a span)."""
        span = self.current.get()
        if span is None:
            return None
        return to_map(TraceContext(traceparent=span.traceparent))

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """The queued spans, taken in notification-sized batches."""
        while self.queue:
            count = min(len(self.queue), MAX_SPANS_PER_NOTIFICATION)
            yield [self.queue.popleft() for _ in range(count)]


#: The one tracer of the sandbox process.
TRACER = Tracer()


def span_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id), for JSON log lines."""
    span = TRACER.current.get()
    return None if span is None else (span.trace_id, span.span_id)


#: Methods whose params declare `trace` (every sealed call's).
TRACED_METHODS = frozenset(
    name for name, spec in METHODS.items() if "trace" in spec.params.__struct_fields__
)


def _parsed(traceparent: str | None) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a well-formed traceparent, else None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or not int(match[1], 16) or not int(match[2], 16):
        return None
    return match[1], match[2], bool(int(match[3], 16) & 1)


class TracedClient(RPCClient):
    """The guardian link's RPC client, with tracing: each sealed call carries the current
    span's context, the settings come with `hello`, and finished spans are sent as
    `trace.spans` every `FLUSH_EVERY_S`."""

    def __init__(self, *args: Any, tracer: Tracer = TRACER, **kwargs: Any) -> None:
        self.tracer = tracer
        on_connect: Callable[[dict[str, Any]], None] | None = kwargs.get("on_connect")

        def connected(hello: dict[str, Any]) -> None:
            tracer.configure(hello.get("tracing"))
            if on_connect is not None:
                on_connect(hello)

        kwargs["on_connect"] = connected
        super().__init__(*args, **kwargs)
        self._flusher: asyncio.Task[None] | None = None

    def _traced(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """`params` with the current span's context as `trace`: always the sandbox's own,
        whatever a caller's fields held."""
        if method not in TRACED_METHODS:
            return params
        trace = self.tracer.trace_field() if self.tracer.enabled else None
        if trace is None:
            if "trace" not in params:
                return params
            return {key: value for key, value in params.items() if key != "trace"}
        return {**params, "trace": trace}

    async def call(self, method: str, params: dict[str, Any], timeout: float | None = None) -> Any:
        return await super().call(method, self._traced(method, params), timeout=timeout)

    def stream(
        self, method: str, params: dict[str, Any], timeout: float | None = None
    ) -> RPCStream:
        return super().stream(method, self._traced(method, params), timeout=timeout)

    def start(self) -> None:
        super().start()
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        self.flush()
        await super().close()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            self.flush()

    def flush(self) -> None:
        """Send what is queued; with no guardian to take them, the spans are dropped."""
        if not self.tracer.queue:
            return
        try:
            channel = self._usable_channel()
        except Exception:
            self.tracer.queue.clear()
            return
        for batch in self.tracer.batches():
            try:
                channel.send(notification("trace.spans", {"spans": batch}))
            except Exception:
                self.tracer.queue.clear()
                return
