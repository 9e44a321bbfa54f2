"""Attack surface: what a provider (or a proxy before it) sends back.

A compressed reply is decoded with a cap on the decoded size, so a small "gzip bomb" cannot
make the guardian allocate what it unpacks to. Against a real guardian process.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import ProviderError
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess

CALLER = {"ip": "127.0.0.1", "user_agent": "pytest"}
BOMB_BYTES = 1 << 30  # what the bomb unpacks to: 1 GiB


def gzip_bomb() -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(BOMB_BYTES >> 20)]
    return b"".join(parts) + compressor.flush()


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="openai").start()
    yield server
    server.stop()


@pytest.fixture
async def guardian_client(fake: FakeOpenAI) -> AsyncIterator[tuple[GuardianProcess, RPCClient]]:
    config = f"""
[LLM_PROVIDER.openai]
base_url = "{fake.base}/v1"
allow_insecure = "true"
env_key = "OPENAI_API_KEY"
default_model = "gpt-test"
[LLM_PROVIDER.openai_END]
"""
    guardian = GuardianProcess(config_text=config, env={"OPENAI_API_KEY": "k-openai-123456"})
    guardian.start()

    async def connect() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    client = RPCClient(
        connect, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO, call_timeout=60
    )
    client.start()
    assert await client.wait_connected(5)
    yield guardian, client
    await client.close()
    guardian.stop()


async def test_a_gzip_bomb_is_refused_within_the_reply_cap(
    fake: FakeOpenAI, guardian_client: tuple[GuardianProcess, RPCClient]
) -> None:
    guardian, client = guardian_client
    bomb = gzip_bomb()
    assert len(bomb) < 8 << 20  # small on the wire
    fake.behave(
        Behaviour(
            raw_body=bomb,
            raw_headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    )
    assert guardian.process is not None
    before = peak_rss_bytes(guardian.process.pid)
    params = {"caller": CALLER, "tool": "llm_complete", "prompt": "hi", "provider": "openai"}
    with pytest.raises(ProviderError, match="larger than"):
        await client.call("llm.complete", params)
    grown = peak_rss_bytes(guardian.process.pid) - before
    assert grown < 64 << 20, f"the guardian grew by {grown >> 20} MiB"
    # and it still serves
    assert (await client.call("llm.complete", params))["provider"] == "openai"
