"""OpenTelemetry spans of the guardian's sealed calls, in the GenAI semantic conventions.

Off by default, and then nothing of OpenTelemetry is imported: `span` hands out one shared
object whose methods do nothing. Switched on (`guardian.telemetry_export.start`, from
`guardian.main`, when an OTLP endpoint is configured) the spans go to a real tracer. What a
span carries is chosen here and at the few places that open one: names, models, providers,
token counts, a key's slot number, error kinds. Never a key or a provider's error text, and
never a prompt or an answer but under the explicit opt-in of `guardian.telemetry_content`:
an exception is not recorded on a span (its message can echo a request), only its kind as
`error.type`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Tracer

    from protocol.contract import SpanRecord

#: The attribute values a span takes (the OpenTelemetry API's own types).
Value = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]

#: Span kinds, as names (the API's enum is imported only when tracing is on).
INTERNAL = "INTERNAL"
CLIENT = "CLIENT"
SERVER = "SERVER"


class Span(Protocol):
    """What the call path may do with a span."""

    def set_attribute(self, key: str, value: Value) -> None: ...

    def add_event(self, name: str, attributes: Mapping[str, Value] | None = None) -> None: ...

    def fail(self, error_type: str) -> None: ...


class _Off:
    """The span of a call when tracing is off: one shared object, nothing done."""

    def set_attribute(self, key: str, value: Value) -> None:
        pass

    def add_event(self, name: str, attributes: Mapping[str, Value] | None = None) -> None:
        pass

    def fail(self, error_type: str) -> None:
        pass


OFF = _Off()


class _On:
    """A real span, with `fail` in the conventions: `error.type` and an error status with no
    description (a description would be free text)."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def set_attribute(self, key: str, value: Value) -> None:
        self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Mapping[str, Value] | None = None) -> None:
        self._span.add_event(name, attributes=attributes)

    def fail(self, error_type: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR))


_tracer: Tracer | None = None
#: Where the sandbox's finished spans go (`guardian.telemetry_export`), when tracing is on.
_sink: Callable[[Sequence[SpanRecord]], None] | None = None


def install(
    tracer: Tracer | None, sink: Callable[[Sequence[SpanRecord]], None] | None = None
) -> None:
    """Spans from now on go to `tracer` (None: tracing off); the sandbox's to `sink`."""
    global _tracer, _sink
    _tracer = tracer
    _sink = sink if tracer is not None else None


class Meters(Protocol):
    """The GenAI client metrics (`guardian.telemetry_export` builds them on the SDK)."""

    def attempt(
        self,
        attributes: Mapping[str, Value],
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        first_chunk_s: float | None,
    ) -> None: ...


_meters: Meters | None = None


def install_meters(meters: Meters | None) -> None:
    global _meters
    _meters = meters


def attempt_metrics(
    attributes: Mapping[str, Value],
    duration_s: float,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    first_chunk_s: float | None = None,
) -> None:
    """One attempt's `gen_ai.client.operation.duration`, `gen_ai.client.token.usage` and,
    streamed, `gen_ai.client.operation.time_to_first_chunk` (the same figures its span and
    the Prometheus endpoint show); nothing when off."""
    if _meters is not None:
        _meters.attempt(attributes, duration_s, input_tokens, output_tokens, first_chunk_s)


def sandbox_spans(records: Sequence[SpanRecord]) -> None:
    """The sandbox's finished spans (a checked `trace.spans` notification), exported with
    the guardian's own; dropped when tracing is off."""
    if _sink is not None and records:
        _sink(records)


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: str = INTERNAL,
    attributes: Mapping[str, Value] | None = None,
    parent: str | None = None,
) -> Iterator[Span]:
    """A child of the current span for the block (a no-op when tracing is off), or of
    `parent` (a W3C traceparent) when one is given and well formed. An exception leaving the
    block marks the span failed with the exception's class name only."""
    tracer = _tracer
    if tracer is None:
        yield OFF
        return
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
        name,
        context=_remote_parent(parent) if parent else None,
        kind=SpanKind[kind],
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as real:
        wrapped = _On(real)
        try:
            yield wrapped
        except BaseException as exc:
            if real.is_recording() and "error.type" not in getattr(real, "attributes", {}):
                wrapped.fail(error_type_of(exc))
            raise


def current() -> Span:
    """The innermost open span (for an event from a layer), or the no-op one."""
    if _tracer is None:
        return OFF
    from opentelemetry import trace

    return _On(trace.get_current_span())


def error_type_of(exc: BaseException) -> str:
    """`error.type` for an exception: a provider failure's kind and status, an RPC error's
    code name, else the class name. Never the message."""
    kind = getattr(exc, "kind", None)
    status = getattr(exc, "status", None)
    if isinstance(kind, str):
        return str(status) if kind == "status" and isinstance(status, int) else kind
    return type(exc).__name__


_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C traceparent, or None when it is malformed or
    names the invalid all-zero trace or span."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(match[3], 16)


def _remote_parent(traceparent: str) -> Context | None:
    """A context whose current span is the remote `traceparent` (None: start a new trace)."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    from opentelemetry.trace import (
        NonRecordingSpan,
        SpanContext,
        TraceFlags,
        set_span_in_context,
    )

    trace_id, span_id, flags = parsed
    remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))
    return set_span_in_context(NonRecordingSpan(remote))


def current_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id) in hex, for JSON log lines; None when off or
    outside a span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
