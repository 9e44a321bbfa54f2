"""Each streamed call has its own window (issue 33, target 4): a reader that stops reading a
long answer holds at most the window's chunks in the client, the guardian sends the rest as
the reader takes it (`stream.ack`), and a client that asks for no window is served as before.
A real guardian process, its real socket and an OpenAI-compatible fake on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from tests.fakes.providers import FakeOpenAI
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess

WORDS = 3000
WINDOW = 8
PARAMS = {"caller": {"ip": "127.0.0.1", "user_agent": "pytest"}, "tool": "llm_complete"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(
        name="openai", reply_text=" ".join(f"w{i}" for i in range(WORDS)), event_delay_s=0
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guardian(fake: FakeOpenAI) -> Iterator[GuardianProcess]:
    config = f"""
[LLM_PROVIDER.openai]
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "gpt-test"
[LLM_PROVIDER.openai_END]
"""
    process = GuardianProcess(config_text=config).start()
    yield process
    process.stop()


async def _client(guardian: GuardianProcess, window: int) -> RPCClient:
    async def connect() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    client = RPCClient(
        connect, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO, stream_window=window
    )
    client.start()
    assert await client.wait_connected(10), guardian.logs()
    return client


@pytest.fixture
async def windowed(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await _client(guardian, WINDOW)
    yield client
    await client.close()


async def _held_after_a_pause(client: RPCClient) -> tuple[int, str]:
    """Read one chunk, stop reading for a while, then count what waits in the client; read
    the rest and return (chunks held during the pause, the whole text)."""
    async with client.stream("llm.stream", {**PARAMS, "prompt": "long"}, timeout=30) as stream:
        texts: list[str] = [(await anext(stream))["text"]]
        await asyncio.sleep(1.0)  # the slow reader: the guardian could send everything now
        held = stream.queue.qsize()
        async for chunk in stream:
            texts.append(chunk["text"])
        assert stream.result is not None
    return held, "".join(texts)


async def test_a_slow_reader_holds_at_most_the_window(windowed: RPCClient) -> None:
    held, text = await _held_after_a_pause(windowed)
    assert held <= WINDOW, f"{held} chunks held by a reader that stopped (window {WINDOW})"
    assert text.split() == [f"w{i}" for i in range(WORDS)]  # nothing lost or reordered


async def test_without_a_window_the_answer_piles_up(guardian: GuardianProcess) -> None:
    """What the window prevents (and what an older client still gets): everything sent."""
    client = await _client(guardian, 0)
    try:
        held, text = await _held_after_a_pause(client)
    finally:
        await client.close()
    assert held > 10 * WINDOW
    assert len(text.split()) == WORDS


async def test_an_ack_for_a_stream_that_ended_is_ignored(windowed: RPCClient) -> None:
    """A stream's last ack can cross its end on the socket: no error, the link stays up."""
    windowed._send_ack(123456, 4)
    channel = windowed._channel
    assert isinstance(await windowed.call("health", {}), dict)
    assert windowed._channel is channel and channel is not None and not channel.closed
