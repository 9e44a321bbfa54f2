"""The guardian's RPC server against a hostile peer on its socket: one that sends and never
reads, one that keeps thousands of calls running, and a call whose answer is larger than a
frame. Each may hurt only itself: the guardian stops reading that connection (so its memory
stays flat), another connection is answered at once, and an oversized answer fails its own
call with a typed error while the connection and its other calls go on. A `stream.ack`
that is not an integer msgid and count is a peer no sound sandbox is: its connection ends."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol import PROTOCOL_VERSION
from protocol.client import RPCClient
from protocol.errors import Internal
from protocol.framing import FrameDecoder, encode
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox
from tests.security.common import caller, provider_block

#: Enough [MODEL.*] blocks that one `models.info` answer is ~15 KB for an ~80-byte request.
MODELS = "".join(
    f'[MODEL.model-{i:03d}]\nprovider = "fake"\nmax_output_tokens = "4096"\n'
    f'cost_input_per_1m = "1.5"\ncost_output_per_1m = "7.5"\ncontext_window = "200000"\n'
    f"[MODEL.model-{i:03d}_END]\n"
    for i in range(60)
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guardian(fake: FakeOpenAI) -> Iterator[GuardianProcess]:
    config = provider_block(fake, keyed=False).replace('timeout_sec = "5"', 'timeout_sec = "60"')
    process = GuardianProcess(config_text=config + MODELS).start()
    yield process
    process.stop()


@pytest.fixture
async def rpc(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await rpc_as_sandbox(guardian.socket_path, 10)
    yield client
    await client.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_peer(guardian: GuardianProcess) -> socket.socket:
    """A connection past its hello, as a hostile sandbox holds one."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(guardian.socket_path))
    sock.sendall(
        encode(
            [
                0,
                1,
                "hello",
                {"protocol_version": PROTOCOL_VERSION, "client": "sandbox", "listen": ["::1"]},
            ]
        )
    )
    decoder, replies = FrameDecoder(8 * 1024 * 1024), []
    while not replies:
        replies = decoder.feed(sock.recv(65536))
    assert replies[0][2] is None, replies
    return sock


def flood(sock: socket.socket, frames: Iterator[bytes], limit: int) -> tuple[int, bool]:
    """Send frames until `limit` bytes went out or the guardian stops taking them for 2 s;
    returns (bytes sent, whether it stopped taking them)."""
    sock.settimeout(2.0)
    sent = 0
    for frame in frames:
        try:
            sock.sendall(frame)
        except TimeoutError:
            return sent, True
        sent += len(frame)
        if sent >= limit:
            return sent, False
    return sent, False


def batches(method: str, params: dict[str, Any], start: int = 10) -> Iterator[bytes]:
    msgid = start
    while True:
        yield b"".join(encode([0, msgid + i, method, params]) for i in range(100))
        msgid += 100


async def test_a_peer_that_never_reads_holds_only_itself(
    guardian: GuardianProcess, rpc: RPCClient
) -> None:
    assert guardian.process is not None
    pid = guardian.process.pid
    one = await rpc.call("models.info", {"caller": caller(None)})
    assert len(one["models"]) >= 60
    before = rss_mb(pid)
    sock = raw_peer(guardian)
    try:
        # ~80-byte requests, ~15 KB answers, none of them read: 1.5 MB of requests would be
        # some 280 MB of answers queued in the guardian. It stops after ~100 KB here.
        sent, stopped = await asyncio.to_thread(
            flood, sock, batches("models.info", {"caller": caller(None)}), 1536 * 1024
        )
        assert stopped, f"the guardian kept reading a peer that never reads ({sent} bytes)"
        assert sent < 1024 * 1024, sent
        grown = rss_mb(pid) - before
        assert grown < 150, f"guardian grew {grown:.0f} MB for one stalled peer"
        # Another connection is served at once all the while.
        started = time.monotonic()
        for _ in range(20):
            await rpc.call("health", {})
        assert time.monotonic() - started < 2.0
    finally:
        sock.close()
    assert (await rpc.call("health", {}))["status"] == "ok"


async def test_calls_in_flight_per_connection_are_bounded(
    guardian: GuardianProcess, fake: FakeOpenAI, rpc: RPCClient
) -> None:
    fake.default = Behaviour(hang_s=5)  # every completion hangs (past the test)
    sock = raw_peer(guardian)
    try:
        params = {"caller": caller(None), "tool": "llm_complete", "prompt": "p" * 2000}
        frame_size = len(encode([0, 10, "llm.complete", params]))
        sent, stopped = await asyncio.to_thread(
            flood, sock, batches("llm.complete", params), 4000 * frame_size
        )
        assert stopped, "the guardian took 4000 hanging calls on one connection"
        assert sent // frame_size < 2500, sent // frame_size  # 1024 running, the rest queued
        started = time.monotonic()
        assert (await rpc.call("health", {}))["status"] == "ok"
        assert time.monotonic() - started < 2.0
    finally:
        sock.close()
        fake.default = Behaviour()
    # The peer hung up while it was not being read: its calls end with it, and the provider
    # connections they held (every one the pool has) are free again at once.
    started = time.monotonic()
    params = {"caller": caller(None), "tool": "llm_complete", "prompt": "after"}
    assert (await rpc.call("llm.complete", params))["text"] == fake.reply_text
    assert time.monotonic() - started < 2.5


async def test_an_oversized_answer_fails_only_its_own_call(
    fake: FakeOpenAI, rpc: RPCClient
) -> None:
    fake.default = Behaviour()
    # The first completion to arrive is answered after a second, the other at once with 9 MB
    # of text: an answer over the 8 MiB frame while the first is still in flight.
    fake.behave(Behaviour(hang_s=1.0), Behaviour(text="x" * 9_000_000))
    params = {"caller": caller(None), "tool": "llm_complete", "prompt": "hi"}
    outcomes = await asyncio.gather(
        rpc.call("llm.complete", params),
        rpc.call("llm.complete", params),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], Internal), outcomes
    assert "frame limit" in failed[0].message
    assert len(answered) == 1 and answered[0]["text"] == fake.reply_text
    assert (await rpc.call("health", {}))["status"] == "ok"


@pytest.mark.parametrize(
    "params", [{"msgid": "1", "n": 1}, {"msgid": 1, "n": 0}, {"n": 1}, {"msgid": 1, "n": 2**40}]
)
async def test_a_malformed_stream_ack_ends_the_connection(
    guardian: GuardianProcess, params: dict[str, Any]
) -> None:
    client = await rpc_as_sandbox(guardian.socket_path, 10)
    try:
        channel = client._channel
        assert channel is not None
        channel.send([2, "stream.ack", params])
        for _ in range(100):
            if channel.closed:
                break
            await asyncio.sleep(0.02)
        assert channel.closed
    finally:
        await client.close()
