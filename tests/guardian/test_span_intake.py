"""The guardian's side of tracing across the RPC: a sealed call's `trace` field checked like
any other, the sandbox's `trace.spans` decoded, bounded in rate, and exported as spans of the
`sealgate.sandbox` scope; a call's spans become children of the sandbox's span."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from guardian import telemetry
from guardian.dispatch import NOTIFICATIONS
from guardian.telemetry_export import sandbox_sink
from guardian.telemetry_intake import SPAN_BURST, SPANS_PER_S, SpanIntake
from protocol.contract import LlmParams, SearchParams, decode_params
from protocol.errors import InvalidParams
from protocol.methods import Surface

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
CALLER = {"ip": "127.0.0.1", "user_agent": "test"}


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t"}))
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    telemetry.install(
        provider.get_tracer("t"), sink=sandbox_sink(provider.resource, processor.on_end, "0")
    )
    try:
        yield exporter
    finally:
        telemetry.install(None)
        provider.shutdown()


def record(n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "trace_id": TRACE,
        "span_id": f"{n + 1:016x}",
        "name": "POST /v1/chat/completions",
        "kind": "server",
        "start_ns": 1_000,
        "end_ns": 2_000,
        "attributes": {"http.route": "/v1/chat/completions", "http.response.status_code": 200},
        **extra,
    }


@pytest.mark.parametrize("kind", [LlmParams, SearchParams])
def test_the_trace_field_is_declared_and_checked(kind: type[Any]) -> None:
    base: dict[str, Any] = {"caller": CALLER, "tool": "chat"}
    if kind is SearchParams:
        base["query"] = "q"
    good = decode_params(kind, {**base, "trace": {"traceparent": f"00-{TRACE}-{SPAN}-01"}})
    assert good.trace.traceparent == f"00-{TRACE}-{SPAN}-01"
    assert decode_params(kind, {**base, "trace": None}).trace is None
    for bad in (
        {"traceparent": "00-xyz"},
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "a=b"},
        {},
        "00-...",
    ):
        with pytest.raises(InvalidParams, match="trace"):
            decode_params(kind, {**base, "trace": bad})


def test_sandbox_spans_are_exported_as_its_scope(exported: InMemorySpanExporter) -> None:
    intake = SpanIntake()
    intake.take(
        {
            "spans": [
                record(0, parent_span_id=SPAN, parent_remote=True),
                record(1, error_type="500"),
                record(2, parent_span_id="0" * 16),
            ]
        }
    )
    spans: tuple[ReadableSpan, ...] = exported.get_finished_spans()
    assert len(spans) == 3
    first, failed, orphan = spans
    assert first.instrumentation_scope is not None
    assert first.instrumentation_scope.name == "sealgate.sandbox"
    assert first.kind is SpanKind.SERVER and first.context.trace_id == int(TRACE, 16)
    assert first.parent is not None and first.parent.span_id == int(SPAN, 16)
    assert first.parent.is_remote
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "500"
    assert orphan.parent is None


def test_the_rate_is_bounded(exported: InMemorySpanExporter) -> None:
    now = [100.0]
    intake = SpanIntake(clock=lambda: now[0])
    for _ in range(int(SPAN_BURST) // 64 + 2):
        intake.take({"spans": [record(n) for n in range(64)]})
    assert len(exported.get_finished_spans()) == int(SPAN_BURST)
    assert intake.dropped > 0
    now[0] += 1.0  # a second later: SPANS_PER_S more
    intake.take({"spans": [record(n) for n in range(64)]})
    assert len(exported.get_finished_spans()) == int(SPAN_BURST) + min(64, int(SPANS_PER_S))


def test_trace_spans_is_the_sandboxs_one_new_notification() -> None:
    # stream.ack came later: a stream's window (guardian/server.py)
    assert NOTIFICATIONS[Surface.SANDBOX] == {"cancel", "stream.ack", "trace.spans"}
    assert NOTIFICATIONS[Surface.ADMIN] == frozenset()


def test_a_malformed_notification_is_refused_even_when_off() -> None:
    with pytest.raises(InvalidParams):
        SpanIntake().take({"spans": [record(0, kind="client")]})
    with pytest.raises(InvalidParams):
        SpanIntake().take({"spans": "no"})
    SpanIntake().take({"spans": [record(0)]})  # tracing off: checked, then dropped


def test_a_guardian_span_under_a_remote_parent(exported: InMemorySpanExporter) -> None:
    with telemetry.span("llm.complete", kind=telemetry.SERVER, parent=f"00-{TRACE}-{SPAN}-01"):
        with telemetry.span("sealgate.completion"):
            pass
    with telemetry.span("fresh", parent=f"00-{'0' * 32}-{SPAN}-01"):
        pass
    inner, rpc, fresh = exported.get_finished_spans()
    assert rpc.context.trace_id == int(TRACE, 16)
    assert rpc.parent is not None and rpc.parent.span_id == int(SPAN, 16)
    assert inner.parent is not None and inner.parent.span_id == rpc.context.span_id
    assert fresh.parent is None and fresh.context.trace_id != int(TRACE, 16)
