"""The sandbox's tracer (`sandbox.tracing`), in-process: whose traceparent it takes, what a
sealed call's `trace` field holds, and what a finished span carries."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocol.contract import TraceSpansParams, decode_params
from protocol.errors import InvalidParams
from sandbox.tracing import MAX_QUEUED, TRACED_METHODS, Settings, TracedClient, Tracer

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


def tracer(trusted: list[str] | None = None, enabled: bool = True) -> Tracer:
    t = Tracer()
    t.configure({"enabled": enabled, "trusted_clients": trusted or []})
    return t


def test_off_until_hello_says_on() -> None:
    t = Tracer()
    with t.server_span("GET /", traceparent=None, client="127.0.0.1") as span:
        assert span is None
    assert not t.queue
    for hello in (None, {}, {"enabled": "yes"}, {"enabled": False}):
        t.configure(hello)
        assert not t.enabled


def test_a_trusted_clients_traceparent_is_the_parent() -> None:
    t = tracer(["10.0.0.0/8"])
    with t.server_span(
        "POST /v1/chat/completions", traceparent=TRACEPARENT, client="10.1.2.3"
    ) as span:
        assert span is not None
    (record,) = t.queue
    assert record["trace_id"] == CLIENT_TRACE
    assert record["parent_span_id"] == CLIENT_SPAN and record["parent_remote"] is True


@pytest.mark.parametrize(
    ("traceparent", "client"),
    [
        (TRACEPARENT, "192.168.1.5"),  # not trusted
        (TRACEPARENT, None),  # no address
        (TRACEPARENT, "not an address"),
        (f"00-{'0' * 32}-{CLIENT_SPAN}-01", "10.1.2.3"),  # the invalid trace
        (f"00-{CLIENT_TRACE}-{'0' * 16}-01", "10.1.2.3"),  # the invalid span
        (f"01-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "10.1.2.3"),  # an unknown version
        ("garbage", "10.1.2.3"),
        (None, "10.1.2.3"),
    ],
)
def test_anything_else_starts_a_fresh_trace(traceparent: str | None, client: str | None) -> None:
    t = tracer(["10.0.0.0/8"])
    with t.server_span("GET /v1/models", traceparent=traceparent, client=client):
        pass
    (record,) = t.queue
    assert record["trace_id"] != CLIENT_TRACE and len(record["trace_id"]) == 32
    assert "parent_span_id" not in record and record["parent_remote"] is False


def test_a_trusted_client_that_does_not_sample_is_not_traced() -> None:
    t = tracer(["127.0.0.1/32"])
    with t.server_span(
        "GET /", traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00", client="127.0.0.1"
    ) as span:
        assert span is None
    assert not t.queue


def test_a_finished_span_fits_the_notification_contract() -> None:
    t = tracer()
    with pytest.raises(RuntimeError):
        with t.server_span("x" * 300, traceparent=None, client=None) as span:
            assert span is not None
            for n in range(40):
                span.set(f"attribute.{n}", "v" * 1000)
            raise RuntimeError("the prompt must not appear")
    batch = next(t.batches())
    params = decode_params(TraceSpansParams, {"spans": batch})  # what the guardian checks
    (record,) = params.spans
    assert record.error_type == "RuntimeError" and len(record.attributes) == 16
    assert "the prompt" not in msgspec.json.encode(batch).decode()


def test_the_queue_is_bounded_and_batched() -> None:
    t = tracer()
    for _ in range(MAX_QUEUED + 10):
        with t.server_span("GET /", traceparent=None, client=None):
            pass
    assert len(t.queue) == MAX_QUEUED
    batches = list(t.batches())
    assert sum(map(len, batches)) == MAX_QUEUED and max(map(len, batches)) == 64


class _Recording(TracedClient):
    """The client's traced params, without a socket."""

    def __init__(self, t: Tracer) -> None:
        super().__init__(lambda: None, client_name="sandbox", tracer=t)


def test_sealed_calls_carry_the_current_span_and_nothing_else_does() -> None:
    assert {"llm.complete", "llm.stream", "llm.embed", "search.web"} <= TRACED_METHODS
    assert "hello" not in TRACED_METHODS and "health" not in TRACED_METHODS
    t = tracer()
    client = _Recording(t)
    params: dict[str, Any] = {"caller": {"ip": "", "user_agent": ""}, "tool": "chat"}
    assert client._traced("llm.complete", params) == params  # no span open
    with t.server_span("POST /v1/chat/completions", traceparent=None, client=None) as span:
        assert span is not None
        traced = client._traced("llm.complete", params)
        assert traced["trace"] == {"traceparent": f"00-{span.trace_id}-{span.span_id}-01"}
        assert "trace" not in client._traced("health", {})
        # whatever a caller's fields held, the trace is the sandbox's own
        forged = client._traced("llm.complete", {**params, "trace": {"traceparent": TRACEPARENT}})
        assert forged["trace"] == traced["trace"]
    assert "trace" not in client._traced(
        "llm.complete", {**params, "trace": {"traceparent": TRACEPARENT}}
    )


def test_the_trusted_list_tolerates_bad_entries() -> None:
    settings = Settings.from_hello({"enabled": True, "trusted_clients": ["bad", "::1", 7]})
    assert settings.trusts("::1") and not settings.trusts("127.0.0.1")


@pytest.mark.parametrize(
    "spans",
    [
        [{"trace_id": "x"}],
        [
            {
                "trace_id": CLIENT_TRACE,
                "span_id": CLIENT_SPAN,
                "name": "n",
                "kind": "client",
                "start_ns": 0,
                "end_ns": 1,
                "attributes": {},
            }
        ],
        [
            {
                "trace_id": CLIENT_TRACE,
                "span_id": CLIENT_SPAN,
                "name": "n",
                "kind": "server",
                "start_ns": 0,
                "end_ns": 1,
                "attributes": {"k": ["a", "list"]},
            }
        ],
        [
            {
                "trace_id": CLIENT_TRACE,
                "span_id": CLIENT_SPAN,
                "name": "n",
                "kind": "server",
                "start_ns": 0,
                "end_ns": 1,
                "attributes": {},
                "extra": 1,
            }
        ],
        [
            {
                "trace_id": CLIENT_TRACE,
                "span_id": CLIENT_SPAN,
                "name": "n",
                "kind": "server",
                "start_ns": 0,
                "end_ns": 1,
                "attributes": {},
            }
        ]
        * 65,
    ],
)
def test_the_notification_contract_refuses_what_does_not_fit(spans: list[Any]) -> None:
    with pytest.raises(InvalidParams):
        decode_params(TraceSpansParams, {"spans": spans})
