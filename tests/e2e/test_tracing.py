"""OpenTelemetry export end to end: the real stack, fake providers and a real OTLP/HTTP
receiver on 127.0.0.1 (`tests/fakes/otlp.py`). A /v1 completion that falls back arrives as
one trace in the GenAI conventions, with the configured service name and headers, and no
exported byte holds the prompt, the answer, a provider key or the exporter's own header."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.mcp_client import MODES, mcp_session
from tests.fakes.base import Behaviour
from tests.fakes.otlp import OTLPReceiver
from tests.fakes.providers import FakeOpenAI
from tests.helpers import ROOT, Stack

KEYS = {
    "FIRST_API_KEY": "fake-first-canary-key-0000000000001",
    "SECOND_API_KEY": "fake-second-canary-key-000000000002",
}
OTLP_HEADER = "otlp-backend-canary-0123456789abcdef"
PROMPT = "the canary prompt about a purple walrus"
ANSWER = "an answer nobody may trace"

# OTLP span kinds and status codes, as the protobuf numbers them
KIND_INTERNAL, KIND_SERVER, KIND_CLIENT = 1, 2, 3
STATUS_ERROR = 2


def config(first: FakeOpenAI, second: FakeOpenAI, trusted: str = "127.0.0.1/32") -> str:
    def block(name: str, fake: FakeOpenAI, **keys: str) -> str:
        lines = [f"[LLM_PROVIDER.{name}]", f'base_url = "{fake.base}/v1"', 'api = "openai"']
        lines += ['allow_insecure = "true"', 'timeout_sec = "3"']
        lines += [f'{k} = "{v}"' for k, v in keys.items()]
        return "\n".join([*lines, f"[LLM_PROVIDER.{name}_END]"])

    return "\n".join(
        [
            f'[HUB]\nname = "SealGate tracing"\ntrace_trusted_clients = "{trusted}"\n[HUB_END]',
            block(
                "first",
                first,
                env_key="FIRST_API_KEY",
                default_model="m-first",
                fallback_to="second",
            ),
            block("second", second, env_key="SECOND_API_KEY", default_model="m-second"),
            '[TOOL.chat]\nprovider_type = "llm"\ndefault_provider = "first"\n[TOOL.chat_END]',
        ]
    )


@dataclass
class Traced:
    stack: Stack
    receiver: OTLPReceiver
    first: FakeOpenAI
    second: FakeOpenAI


BOOTSTRAP = "sg_tracing-bootstrap-token-0123456789abcdef"


@contextlib.contextmanager
def traced_stack(trusted: str, extra: dict[str, str] | None = None) -> Iterator[Traced]:
    receiver = OTLPReceiver().start()
    first = FakeOpenAI(name="first", reply_text=ANSWER)
    second = FakeOpenAI(name="second", reply_text=ANSWER)
    first.start()
    second.start()
    env = {
        **KEYS,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-backend-key={OTLP_HEADER}",
        "OTEL_SERVICE_NAME": "sealgate-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "HUB_LOG_FORMAT": "json",
        **(extra or {}),
    }
    stack = Stack(env=env, config_text=config(first, second, trusted))
    try:
        stack.start()
        yield Traced(stack, receiver, first, second)
    finally:
        stack.cleanup()
        first.stop()
        second.stop()
        receiver.stop()


@pytest.fixture(scope="module")
def traced() -> Iterator[Traced]:
    """Loopback clients trusted: their traceparent is honoured."""
    with traced_stack("127.0.0.1/32") as world:
        yield world


@pytest.fixture(scope="module")
def untrusting() -> Iterator[Traced]:
    """No client trusted (the default): every request starts a trace of its own. Auth is on
    (a bootstrap token): the tool cache keeps answers for a credential's grant only."""
    with traced_stack("", {"SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP}) as world:
        yield world


def test_a_fallback_is_one_exported_trace(traced: Traced) -> None:
    traced.first.behave(Behaviour(status=500))
    reply = httpx.post(
        f"{traced.stack.url}/v1/chat/completions",
        json={"model": "m-first", "messages": [{"role": "user", "content": PROMPT}]},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == ANSWER
    (call,) = traced.receiver.wait_for("sealgate.completion")
    traced.receiver.wait_for("chat m-second")
    traced.receiver.wait_for("POST /v1/chat/completions")
    spans = [s for s in traced.receiver.spans if s.trace_id == call.trace_id]
    by_name = {s.name: s for s in spans}
    # the sandbox's server span is the root, the guardian's RPC span its child
    sandbox = by_name["POST /v1/chat/completions"]
    assert sandbox.kind == KIND_SERVER and sandbox.parent_id == ""
    assert sandbox.attributes["http.response.status_code"] == 200
    assert sandbox.attributes["http.route"] == "/v1/chat/completions"
    rpc = by_name["llm.complete"]
    assert rpc.kind == KIND_SERVER and rpc.parent_id == sandbox.span_id
    assert call.parent_id == rpc.span_id
    assert {"sealgate.completion", "sealgate.plan", "chat m-first", "chat m-second"} <= set(by_name)
    assert all(s.service == "sealgate-under-test" for s in spans)
    first, second = by_name["chat m-first"], by_name["chat m-second"]
    for attempt in (first, second):
        assert attempt.kind == KIND_CLIENT and attempt.parent_id == call.span_id
    assert by_name["sealgate.plan"].parent_id == call.span_id
    assert first.status_code == STATUS_ERROR and first.attributes["error.type"] == "500"
    # the conventions' names, with their types as sent on the wire
    assert second.attributes["gen_ai.operation.name"] == "chat"
    assert second.attributes["gen_ai.provider.name"] == "openai"
    assert second.attributes["gen_ai.request.model"] == "m-second"
    assert isinstance(second.attributes["gen_ai.response.model"], str)
    assert isinstance(second.attributes["gen_ai.usage.input_tokens"], int)
    assert isinstance(second.attributes["gen_ai.usage.output_tokens"], int)
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    posts = [s for s in spans if s.name == "POST"]
    assert sorted(p.parent_id for p in posts) == sorted([first.span_id, second.span_id])
    assert all(p.attributes["server.address"] == "127.0.0.1" for p in posts)
    assert (
        "sealgate.fallback",
        {"sealgate.from_provider": "first", "sealgate.provider": "second"},
    ) in call.events
    # the exporter sent the operator's headers, to the standard path
    assert traced.receiver.paths[0] == "/v1/traces"
    assert traced.receiver.headers[0]["x-backend-key"] == OTLP_HEADER


def test_no_exported_byte_holds_content_or_a_secret(traced: Traced) -> None:
    httpx.post(
        f"{traced.stack.url}/v1/chat/completions",
        json={
            "model": "m-first",
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
        },
        timeout=30,
    ).raise_for_status()
    traced.receiver.wait_for("sealgate.completion", count=2)
    exported = b"".join(traced.receiver.bodies)
    for needle in (PROMPT, "purple walrus", ANSWER, OTLP_HEADER, *KEYS.values()):
        assert needle.encode() not in exported, needle


def test_the_exporter_headers_stay_out_of_logs(traced: Traced) -> None:
    logs = traced.stack.logs()
    assert "tracing on" in logs
    assert OTLP_HEADER not in logs


def test_the_sandbox_gets_no_otel_variable(traced: Traced) -> None:
    pid = traced.stack.pid_of("sandbox")
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except PermissionError:
        pytest.skip("the sandbox's environ is not readable by this user")
    names = [entry.split(b"=", 1)[0] for entry in environ.split(b"\0") if entry]
    assert names and not [name for name in names if name.startswith(b"OTEL_")]
    assert OTLP_HEADER.encode() not in environ


def client_context() -> tuple[str, str, str]:
    """A client's own trace id, span id, and the traceparent naming them."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def completion(stack: Stack, headers: dict[str, str]) -> None:
    httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "m-second", "messages": [{"role": "user", "content": PROMPT}]},
        headers=headers,
        timeout=30,
    ).raise_for_status()


def test_a_trusted_clients_traceparent_is_joined(traced: Traced) -> None:
    trace_id, span_id, traceparent = client_context()
    completion(traced.stack, {"traceparent": traceparent})
    spans = traced.receiver.wait_in_trace(trace_id, {"POST /v1/chat/completions", "llm.complete"})
    assert spans["POST /v1/chat/completions"].parent_id == span_id
    assert spans["llm.complete"].parent_id == spans["POST /v1/chat/completions"].span_id


def test_an_untrusted_clients_traceparent_starts_a_fresh_trace(untrusting: Traced) -> None:
    trace_id, _, traceparent = client_context()
    completion(
        untrusting.stack, {"traceparent": traceparent, "authorization": f"Bearer {BOOTSTRAP}"}
    )
    (rpc,) = untrusting.receiver.wait_for("llm.complete")
    (sandbox,) = untrusting.receiver.wait_for("POST /v1/chat/completions")
    assert sandbox.trace_id != trace_id and sandbox.parent_id == ""
    assert rpc.trace_id == sandbox.trace_id and rpc.parent_id == sandbox.span_id
    assert all(s.trace_id != trace_id for s in untrusting.receiver.spans)


@pytest.mark.parametrize(("kind", "mode"), MODES)
def test_an_mcp_call_with_traceparent_in_meta_joins_the_client_trace(
    traced: Traced, kind: str, mode: str
) -> None:
    trace_id, span_id, traceparent = client_context()

    async def call() -> Any:
        async with mcp_session(traced.stack.url, kind, mode) as client:
            return await client.call_tool(
                "chat", {"prompt": PROMPT}, meta={"traceparent": traceparent}
            )

    result = asyncio.run(call())
    assert not result.is_error, result.content
    spans = traced.receiver.wait_in_trace(
        trace_id, {"tools/call chat", "llm.complete", "sealgate.completion", "chat m-first"}
    )
    tool = spans["tools/call chat"]
    assert tool.kind == KIND_SERVER and tool.parent_id == span_id
    assert tool.attributes["gen_ai.tool.name"] == "chat"
    assert spans["llm.complete"].parent_id == tool.span_id
    exported = b"".join(traced.receiver.bodies)
    assert PROMPT.encode() not in exported and ANSWER.encode() not in exported


def test_genai_metrics_from_the_same_figures(traced: Traced) -> None:
    completion(traced.stack, {})
    usage = traced.receiver.wait_for_point(
        "gen_ai.client.token.usage",
        **{"gen_ai.token.type": "input", "gen_ai.request.model": "m-second"},
    )
    assert usage.unit == "{token}" and usage.count >= 1 and usage.sum > 0
    assert usage.attributes["gen_ai.provider.name"] == "openai"
    assert usage.attributes["gen_ai.operation.name"] == "chat"
    duration = traced.receiver.wait_for_point(
        "gen_ai.client.operation.duration", **{"gen_ai.request.model": "m-second"}
    )
    assert duration.unit == "s" and duration.sum > 0
    exported = b"".join(traced.receiver.metric_bodies)
    for needle in (PROMPT, ANSWER, OTLP_HEADER, *KEYS.values()):
        assert needle.encode() not in exported


def test_a_stream_records_its_time_to_first_chunk(traced: Traced) -> None:
    with httpx.stream(
        "POST",
        f"{traced.stack.url}/v1/chat/completions",
        json={"model": "m-second", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        timeout=30,
    ) as reply:
        assert reply.status_code == 200
        reply.read()
    point = traced.receiver.wait_for_point(
        "gen_ai.client.operation.time_to_first_chunk", **{"gen_ai.request.model": "m-second"}
    )
    assert point.unit == "s" and point.count >= 1
    deadline = time.monotonic() + 10
    streamed: list[Any] = []
    while not streamed and time.monotonic() < deadline:
        streamed = [
            s
            for s in traced.receiver.wait_for("chat m-second")
            if "gen_ai.response.time_to_first_chunk" in s.attributes
        ]
        time.sleep(0.05)
    assert streamed and isinstance(
        streamed[0].attributes["gen_ai.response.time_to_first_chunk"], float
    )


def test_the_guardian_imports_no_opentelemetry_while_off() -> None:
    probe = (
        "import sys, guardian.main, guardian.server, guardian.calls.router;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_json_log_lines_carry_the_trace_and_span_ids(traced: Traced) -> None:
    traced.first.behave(Behaviour(status=401))  # the key refused: a warning inside the attempt
    completion_first = httpx.post(
        f"{traced.stack.url}/v1/chat/completions",
        json={"model": "m-first", "messages": [{"role": "user", "content": PROMPT}]},
        timeout=30,
    )
    assert completion_first.status_code == 200, completion_first.text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [
            json.loads(line) for line in traced.stack.logs().splitlines() if line.startswith("{")
        ]
        refused = [line for line in lines if "refused" in line["message"] and "trace_id" in line]
        if refused:
            break
        time.sleep(0.1)
    assert refused, lines[-5:]
    assert {line["process"] for line in lines} == {"guardian", "sandbox"}
    (line,) = refused[-1:]
    attempt = traced.receiver.wait_in_trace(line["trace_id"], {"chat m-first"})["chat m-first"]
    assert line["span_id"] == attempt.span_id
    assert KEYS["FIRST_API_KEY"] not in traced.stack.logs()


def test_a_tool_cache_hit_is_marked_on_the_tool_span(untrusting: Traced) -> None:
    headers = {"authorization": f"Bearer {BOOTSTRAP}"}

    async def call() -> None:
        async with mcp_session(untrusting.stack.url, headers=headers) as client:
            for _ in range(2):
                result = await client.call_tool("chat", {"prompt": "cache me", "temperature": 0})
                assert not result.is_error, result.content

    asyncio.run(call())
    tools = untrusting.receiver.wait_for("tools/call chat", count=2)
    hits = [s for s in tools if s.attributes.get("sealgate.cache.hit") is True]
    misses = [s for s in tools if "sealgate.cache.hit" not in s.attributes]
    assert len(hits) == 1 and len(misses) == 1
    time.sleep(1.0)  # whatever the guardian did for either call has been exported
    asked = {s.trace_id for s in untrusting.receiver.spans if s.name == "llm.complete"}
    assert misses[0].trace_id in asked and hits[0].trace_id not in asked
