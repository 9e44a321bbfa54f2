"""Tracing's surface on the guardian's socket, against a hostile sandbox: the `trace.spans`
notification is checked like every call (a malformed one ends the connection), its spans are
bounded in rate however fast they come, and a sealed call's `trace` field is a checked field,
refused with a typed error when it is not a W3C traceparent. The exporter's settings never
reach the sandbox: `hello` says only on or off and whose traceparent to take."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from guardian.telemetry_intake import SPAN_BURST, SPANS_PER_S
from protocol import PROTOCOL_VERSION
from protocol.client import RPCClient
from protocol.errors import InvalidParams
from protocol.framing import FrameDecoder, encode
from tests.fakes.otlp import OTLPReceiver
from tests.fakes.providers import FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox
from tests.security.common import caller, provider_block

OTLP_HEADER = "otlp-header-canary-0123456789abcdef"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HUB = '[HUB]\ntrace_trusted_clients = "10.0.0.0/8"\n[HUB_END]\n'
TOOL = '[TOOL.chat]\nprovider_type = "llm"\ndefault_provider = "fake"\n[TOOL.chat_END]\n'


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guardian(receiver: OTLPReceiver) -> Iterator[GuardianProcess]:
    fake = FakeOpenAI(name="fake").start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-key={OTLP_HEADER}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    process = GuardianProcess(
        config_text=HUB + provider_block(fake, keyed=False) + TOOL, env=env
    ).start()
    yield process
    process.stop()
    fake.stop()


@pytest.fixture
async def rpc(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await rpc_as_sandbox(guardian.socket_path, 10)
    yield client
    await client.close()


def span(n: int, name: str = "flood") -> dict[str, object]:
    return {
        "trace_id": TRACE,
        "span_id": f"{n + 1:016x}",
        "name": name,
        "kind": "server",
        "start_ns": time.time_ns(),
        "end_ns": time.time_ns(),
        "attributes": {},
    }


def raw_sandbox(guardian: GuardianProcess) -> tuple[socket.socket, FrameDecoder]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(guardian.socket_path))
    hello = {"protocol_version": PROTOCOL_VERSION, "client": "sandbox", "listen": ["127.0.0.1"]}
    sock.sendall(encode([0, 1, "hello", hello]))
    decoder, replies = FrameDecoder(8 * 1024 * 1024), []
    while not replies:
        replies = decoder.feed(sock.recv(65536))
    assert replies[0][2] is None, replies
    return sock, decoder


def closed_by_guardian(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (TimeoutError, ConnectionResetError):
        return False


async def test_hello_gives_the_sandbox_switches_never_exporter_settings(rpc: RPCClient) -> None:
    tracing = rpc.hello["tracing"]
    assert tracing == {"enabled": True, "trusted_clients": ["10.0.0.0/8"]}
    assert OTLP_HEADER not in repr(rpc.hello) and "127.0.0.1:" not in repr(rpc.hello)


@pytest.mark.parametrize(
    "params",
    [
        {"spans": [{**span(0), "kind": "client"}]},
        {"spans": [{**span(0), "attributes": {"k": {"nested": "map"}}}]},
        {"spans": [span(n) for n in range(65)]},
        {"spans": "not a list"},
        {"spans": [span(0)], "extra": True},
    ],
)
def test_a_malformed_trace_spans_ends_the_connection(
    guardian: GuardianProcess, params: dict[str, object]
) -> None:
    sock, _ = raw_sandbox(guardian)
    try:
        sock.sendall(encode([2, "trace.spans", params]))
        assert closed_by_guardian(sock)
    finally:
        sock.close()


def test_a_span_flood_is_bounded(guardian: GuardianProcess, receiver: OTLPReceiver) -> None:
    sock, decoder = raw_sandbox(guardian)
    try:
        started = time.monotonic()
        batch = encode([2, "trace.spans", {"spans": [span(n, "flood") for n in range(64)]}])
        for _ in range(200):  # 12,800 spans in well under a second
            sock.sendall(batch)
        # still a sound connection: a health call on it is answered
        sock.sendall(encode([0, 2, "health", {}]))
        sock.settimeout(10)
        replies: list[object] = []
        while not replies:
            replies = decoder.feed(sock.recv(65536))
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    time.sleep(1.5)  # the guardian's batch export
    received = [s for s in receiver.spans if s.name == "flood"]
    assert received, "no span of the flood was exported"
    assert len(received) <= SPAN_BURST + SPANS_PER_S * (elapsed + 0.5)
    assert len(received) < 200 * 64


async def test_a_malformed_trace_field_is_a_typed_refusal(rpc: RPCClient) -> None:
    base = {"caller": caller(None), "tool": "chat", "prompt": "hi"}
    for trace in ({"traceparent": "00-nope"}, {"traceparent": "x" * 100_000}, "00-abc"):
        with pytest.raises(InvalidParams, match="trace"):
            await rpc.call("llm.complete", {**base, "trace": trace})
    answer = await rpc.call(
        "llm.complete", {**base, "trace": {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}}
    )
    assert answer["provider"] == "fake"
