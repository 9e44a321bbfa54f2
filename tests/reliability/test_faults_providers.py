"""Providers that hang, trickle, reset the connection mid-stream or send malformed SSE: each
call ends in a typed error within the configured timeouts, and falls back to the next
provider only where the rules allow: never after the first chunk reached the caller.

A real guardian with a two-provider chain (`primary` falls back to `backup`), each a fake on
loopback; the test plays the sandbox on guardian.sock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.client import RPCClient
from protocol.errors import ProviderError, RPCError, Timeout
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox
from tests.security.common import caller

TIMEOUT_S = 1.5
TEXT = " ".join(f"w{i:02d}" for i in range(20))
#: docs/RELIABILITY.md's "faults survived" counts these.
FAULTS_SURVIVED: list[str] = []


def config(primary: FakeOpenAI, backup: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.primary]
api = "openai"
base_url = "{primary.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
timeout_sec = "{TIMEOUT_S}"
fallback_to = "backup"
[LLM_PROVIDER.primary_END]
[LLM_PROVIDER.backup]
api = "openai"
base_url = "{backup.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
timeout_sec = "{TIMEOUT_S}"
[LLM_PROVIDER.backup_END]
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    primary = FakeOpenAI(name="primary", reply_text=TEXT).start()
    backup = FakeOpenAI(name="backup", reply_text="backup answer").start()
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(scope="module")
def guardian(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[GuardianProcess]:
    process = GuardianProcess(config_text=config(*fakes)).start()
    yield process
    process.stop()


@pytest.fixture
async def rpc(
    guardian: GuardianProcess, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> AsyncIterator[RPCClient]:
    for fake in fakes:
        fake._queue.clear()
        fake.requests.clear()

    client = await rpc_as_sandbox(guardian.socket_path, 10)
    yield client
    await client.close()


def params(**extra: Any) -> dict[str, Any]:
    return {"caller": caller(None), "tool": "llm_complete", "prompt": "twenty words", **extra}


async def stream_all(rpc: RPCClient) -> tuple[list[Any], Any, RPCError | None, float]:
    """(chunks, result, error, seconds) of one `llm.stream`."""
    chunks: list[Any] = []
    started = time.monotonic()
    try:
        async with rpc.stream("llm.stream", params(), timeout=60) as stream:
            async for chunk in stream:
                chunks.append(chunk)
        return chunks, stream.result, None, time.monotonic() - started
    except RPCError as exc:
        return chunks, None, exc, time.monotonic() - started


# Before the first chunk: the chain may move on, and the backup answers.
@pytest.mark.parametrize(
    "name, behaviour",
    [
        ("hangs before answering", Behaviour(hang_s=TIMEOUT_S * 3)),
        ("resets before the first event", Behaviour(stream_abort_after=0)),
        ("malformed first event", Behaviour(stream_malformed_after=0)),
        ("malformed body", Behaviour(malformed=True)),
    ],
)
async def test_before_the_first_chunk_the_chain_falls_back(
    rpc: RPCClient, fakes: tuple[FakeOpenAI, FakeOpenAI], name: str, behaviour: Behaviour
) -> None:
    primary, _backup = fakes
    primary.behave(behaviour)
    chunks, result, error, seconds = await stream_all(rpc)
    assert error is None, (name, error)
    assert result["provider"] == "backup", result
    assert [step["provider"] for step in result["fallback_path"]] == ["primary"]
    assert "".join(c["text"] for c in chunks) == "backup answer"
    assert seconds < TIMEOUT_S * 2 + 2
    FAULTS_SURVIVED.append(f"provider {name} (stream, fell back)")


# After the first chunk: a typed error, no fallback (the caller has text already).
@pytest.mark.parametrize(
    "name, behaviour, error_type",
    [
        ("resets mid-stream", Behaviour(stream_abort_after=4), ProviderError),
        ("malformed SSE mid-stream", Behaviour(stream_malformed_after=4), ProviderError),
        ("stalls mid-stream", Behaviour(stream_hold=True), ProviderError),
        ("trickles past the budget", Behaviour(trickle_s=TIMEOUT_S / 3), ProviderError),
    ],
)
async def test_after_the_first_chunk_a_typed_error_and_no_fallback(
    rpc: RPCClient,
    fakes: tuple[FakeOpenAI, FakeOpenAI],
    name: str,
    behaviour: Behaviour,
    error_type: type[RPCError],
) -> None:
    primary, backup = fakes
    primary.behave(behaviour)
    chunks, _result, error, seconds = await stream_all(rpc)
    assert isinstance(error, error_type), (name, error)
    assert "broke after" in error.message and error.data["provider"] == "primary"
    assert chunks and len(chunks) < 20
    assert backup.requests == [], "fell back after the first chunk"
    # the provider's timeout, then the call's budget (two providers' worth), plus slack
    assert seconds < TIMEOUT_S * 2 + 2, seconds
    FAULTS_SURVIVED.append(f"provider {name} (typed error, no fallback)")


async def test_every_provider_hanging_is_a_typed_timeout_within_the_budget(
    rpc: RPCClient, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    primary, backup = fakes
    primary.behave(Behaviour(hang_s=TIMEOUT_S * 3))
    backup.behave(Behaviour(hang_s=TIMEOUT_S * 3))
    started = time.monotonic()
    with pytest.raises(Timeout):
        await rpc.call("llm.complete", params(), timeout=60)
    assert time.monotonic() - started < TIMEOUT_S * 2 + 2
    FAULTS_SURVIVED.append("every provider hangs (typed timeout)")
