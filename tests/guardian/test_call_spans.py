"""The spans of a sealed completion (`guardian.telemetry`), in-process on the in-memory
outbound: one trace per call, the plan, one span per attempt in the GenAI conventions, the
outbound request under it, and retries, fallbacks, keys and the budget as events. Nothing of
the prompt, the answer or a key reaches any span."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from guardian import telemetry
from guardian.calls.memory_outbound import Reply
from protocol.errors import ProviderError
from tests.guardian.test_call_matrix import (
    KEYS,
    USAGE_EVENT,
    USER,
    chunk,
    ok,
    status,
    streamed,
    world,
)

PROMPT = "the canary prompt: tell nobody about the purple walrus"
ANSWER = "the secret answer about walruses"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install(provider.get_tracer("test"))
    try:
        yield exporter
    finally:
        telemetry.install(None)
        provider.shutdown()


def named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


async def test_a_fallback_is_one_trace_with_both_attempts(spans: InMemorySpanExporter) -> None:
    w = world({"p0": [status(500)], "p1": [ok(ANSWER)]})
    answer = await w.complete(prompt=PROMPT)
    assert answer["provider"] == "p1"
    finished = spans.get_finished_spans()
    assert len({s.context.trace_id for s in finished}) == 1
    (call,) = named(finished, "sealgate.completion")
    (plan,) = named(finished, "sealgate.plan")
    (first,) = named(finished, "chat m0")
    (second,) = named(finished, "chat m1")
    posts = named(finished, "POST")
    assert call.parent is None
    assert plan.parent is not None and plan.parent.span_id == call.context.span_id
    for attempt in (first, second):
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    # one outbound request under each attempt
    assert sorted(p.parent.span_id for p in posts if p.parent) == sorted(
        [first.context.span_id, second.context.span_id]
    )
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None and first.attributes["error.type"] == "500"
    assert second.attributes is not None
    assert dict(second.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m1",
        "sealgate.provider": "p1",
        "sealgate.stream": False,
        "gen_ai.response.model": "served",
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    assert second.status.status_code is not StatusCode.ERROR
    failed_post = next(p for p in posts if p.parent and p.parent.span_id == first.context.span_id)
    assert failed_post.attributes is not None
    assert failed_post.attributes["http.response.status_code"] == 500
    assert failed_post.attributes["server.address"] == "127.0.0.1"
    assert failed_post.attributes["server.port"] == 9
    assert events(call, "sealgate.fallback") == [
        {"sealgate.from_provider": "p0", "sealgate.provider": "p1"}
    ]
    (reserved,) = events(plan, "sealgate.budget.reserved")
    assert reserved["sealgate.budget.reserved_usd"] > 0
    (settled,) = events(call, "sealgate.budget.settled")
    assert settled["gen_ai.usage.input_tokens"] == 5
    assert "sealgate.cost_usd" not in settled  # m1 has no price


async def test_key_rotation_shows_slots_never_keys(spans: InMemorySpanExporter) -> None:
    w = world({"p0": [status(401), ok()]})
    await w.complete(prompt=PROMPT)
    (attempt,) = named(spans.get_finished_spans(), "chat m0")
    assert events(attempt, "sealgate.key") == [{"sealgate.key.slot": 0}, {"sealgate.key.slot": 1}]
    assert events(attempt, "sealgate.key.refused") == [
        {"sealgate.key.slot": 0, "error.type": "401"}
    ]


async def test_a_retry_is_an_event_of_its_attempt(spans: InMemorySpanExporter) -> None:
    w = world({"p0": [status(503), ok()]}, retry_count=1)
    await w.complete(prompt=PROMPT)
    finished = spans.get_finished_spans()
    (attempt,) = named(finished, "chat m0")
    (retry,) = events(attempt, "sealgate.retry")
    assert retry["sealgate.retry.number"] == 1
    assert retry["error.type"] == "503"
    assert len(named(finished, "POST")) == 2


async def test_a_failed_call_marks_its_span(spans: InMemorySpanExporter) -> None:
    w = world({"p0": [status(400)]})
    with pytest.raises(ProviderError):
        await w.complete(prompt=PROMPT)
    (call,) = named(spans.get_finished_spans(), "sealgate.completion")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None and call.attributes["error.type"] == "ProviderError"
    assert events(call, "sealgate.budget.settled") == [{"error.type": "ProviderError"}]


async def test_no_span_holds_a_prompt_an_answer_or_a_key(spans: InMemorySpanExporter) -> None:
    w = world({"p0": [status(401), status(500)], "p1": [ok(ANSWER)]})
    await w.complete(prompt=PROMPT)
    w2 = world({"p0": [streamed(chunk(ANSWER), USAGE_EVENT)]})
    await w2.complete(prompt=PROMPT, stream=True)
    finished = spans.get_finished_spans()
    assert len(finished) >= 8
    exported = "".join(s.to_json() for s in finished)
    for needle in (PROMPT, "purple walrus", ANSWER, *KEYS.values()):
        assert needle not in exported


async def test_off_by_default_costs_one_shared_object() -> None:
    assert not telemetry.enabled()
    with telemetry.span("x") as first, telemetry.span("y") as second:
        assert first is second is telemetry.OFF
    assert telemetry.current() is telemetry.OFF
    w = world({"p0": [ok()]})
    assert (await w.complete(prompt=PROMPT))["provider"] == "p0"


async def test_content_is_captured_only_when_opted_in_and_redacted(
    spans: InMemorySpanExporter,
) -> None:
    from guardian import telemetry_content

    leaked = f"my key is {KEYS['P1_KEY']} please"
    assert not telemetry_content.configure({})
    await world({"p0": [ok(ANSWER)]}).complete(prompt=leaked)
    (plain,) = named(spans.get_finished_spans(), "chat m0")
    assert plain.attributes is not None
    assert not [k for k in plain.attributes if k.endswith("messages")]
    spans.clear()
    assert telemetry_content.configure(
        {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    )
    try:
        await world({"p0": [ok(f"{ANSWER} {KEYS['P0_KEY']}")]}).complete(
            prompt=leaked, system="be brief"
        )
    finally:
        telemetry_content.disable()
    (captured,) = named(spans.get_finished_spans(), "chat m0")
    attributes = dict(captured.attributes or {})
    inputs = json.loads(str(attributes["gen_ai.input.messages"]))
    outputs = json.loads(str(attributes["gen_ai.output.messages"]))
    assert inputs[-1]["role"] == "user" and "please" in inputs[-1]["parts"][0]["content"]
    assert ANSWER in outputs[0]["parts"][0]["content"] and outputs[0]["finish_reason"] == "stop"
    assert "be brief" in str(attributes["gen_ai.system_instructions"])
    exported = captured.to_json()
    for key in KEYS.values():
        assert key not in exported


async def test_an_embedding_has_its_span(spans: InMemorySpanExporter) -> None:
    w = world(
        {"p0": [Reply(body={"data": [{"embedding": [0.5, 0.25]}], "usage": {"prompt_tokens": 2}})]}
    )
    answer = await w.router.embed({"model": "m0", "input": PROMPT, "caller": {}}, USER)
    assert answer["data"] == [[0.5, 0.25]]
    (span,) = named(spans.get_finished_spans(), "embeddings m0")
    assert span.kind is SpanKind.CLIENT and span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == 2
    assert PROMPT not in span.to_json()
