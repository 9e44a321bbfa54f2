"""Sealed calls on a real guardian process, over its socket, against the fakes: the
non-streaming path, stream frames, the usage ledger, timeouts and Retry-After."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from guardian.tlog import receipts
from protocol.client import RPCClient
from protocol.contract import LlmParams, decode_params, to_map
from protocol.errors import InvalidParams, NotFound, ProviderError, RPCError, Timeout
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox

CALLER = {"ip": "127.0.0.1", "user_agent": "pytest"}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    started = {
        "anthropic": FakeAnthropic(name="anthropic").start(),
        "gemini": FakeGemini(name="gemini").start(),
        "openai": FakeOpenAI(name="openai").start(),
    }
    yield started
    for fake in started.values():
        fake.stop()


def _config(fakes: dict[str, Any]) -> str:
    return f"""
[LLM_PROVIDER.anthropic]
base_url = "{fakes["anthropic"].base}/v1"
allow_insecure = "true"
env_key = "ANTHROPIC_API_KEY"
default_model = "claude-test"
fallback_to = "gemini"
timeout_sec = "1"
[LLM_PROVIDER.anthropic_END]
[LLM_PROVIDER.gemini]
base_url = "{fakes["gemini"].base}/v1beta"
allow_insecure = "true"
env_key = "GEMINI_API_KEY"
default_model = "gemini-test"
timeout_sec = "1"
[LLM_PROVIDER.gemini_END]
[LLM_PROVIDER.openai]
base_url = "{fakes["openai"].base}/v1"
allow_insecure = "true"
env_key = "OPENAI_API_KEY"
default_model = "gpt-test"
[LLM_PROVIDER.openai_END]
[MODEL.claude-test]
provider = "anthropic"
max_output_tokens = "100"
[MODEL.claude-test_END]
[TOOL.quick]
provider_type = "llm"
default_provider = "anthropic"
timeout_sec = "4"
[TOOL.quick_END]
"""


@pytest.fixture(scope="module")
def guardian_with_fakes(fakes: dict[str, Any]) -> Iterator[GuardianProcess]:
    env = {
        "ANTHROPIC_API_KEY": "k-anthropic-123456",
        "GEMINI_API_KEY": "k-gemini-123456",
        "OPENAI_API_KEY": "k-openai-123456",
    }
    process = GuardianProcess(config_text=_config(fakes), env=env).start()
    yield process
    process.stop()


@pytest.fixture
async def client(
    guardian_with_fakes: GuardianProcess, fakes: dict[str, Any]
) -> AsyncIterator[RPCClient]:
    for fake in fakes.values():
        fake.requests.clear()
        fake._queue.clear()

    rpc = await rpc_as_sandbox(guardian_with_fakes.socket_path, 5)
    yield rpc
    await rpc.close()


def _params(**extra: Any) -> dict[str, Any]:
    return {"caller": CALLER, "tool": "llm_complete", "prompt": "hello", **extra}


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
async def test_complete_without_streaming(
    client: RPCClient, fakes: dict[str, Any], provider: str
) -> None:
    result = await client.call("llm.complete", _params(provider=provider, max_tokens=50))
    assert result["text"] == fakes[provider].reply_text
    assert result["provider"] == provider and result["finish_reason"]
    assert result["usage"]["output_tokens"] > 0
    (request,) = fakes[provider].requests
    assert not request.path.endswith("streamGenerateContent")
    assert "stream" not in (request.body or {})


async def test_the_receipt_and_the_row_carry_the_digest_of_the_request_as_received(
    client: RPCClient, fakes: dict[str, Any], guardian_with_fakes: GuardianProcess
) -> None:
    """The digest is worked out while the call waits for its provider (off the answer's
    path): still the SHA-256 of the request as the guardian received it, in the receipt and
    in the row of an answered call and of a failed one."""
    sent = _params(provider="openai", max_tokens=7, prompt="digest me")
    expected = receipts.request_digest(to_map(decode_params(LlmParams, sent)))
    result = await client.call("llm.complete", sent)
    body = result["receipt"].split(".")[0]
    said = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert said["id"] == result["receipt_id"] and said["request_digest"] == expected

    fakes["openai"].behave(Behaviour(status=400))  # refused: the call ends without a receipt
    refused = _params(provider="openai", prompt="digest me too")
    with pytest.raises(RPCError):
        await client.call("llm.complete", refused)
    await asyncio.sleep(0.4)  # the ledger is at most 100 ms behind
    db = sqlite3.connect(guardian_with_fakes.runtime / "guardian" / "guardian.db")
    digests = dict(db.execute("SELECT key, request_digest FROM usage").fetchall())
    db.close()
    assert digests[result["receipt_id"]] == expected
    failed = receipts.request_digest(to_map(decode_params(LlmParams, refused)))
    assert failed in digests.values()


async def test_stream_frames_arrive_as_the_provider_sends_them(client: RPCClient) -> None:
    chunks = []
    async with client.stream("llm.stream", _params(provider="openai")) as stream:
        async for chunk in stream:
            chunks.append(chunk["text"])
    assert len(chunks) >= 5
    assert "".join(chunks).strip()
    assert stream.result["text"] == ""  # the text crossed the socket once, in the chunks
    assert stream.result["usage"] == {"input_tokens": 10, "output_tokens": 6}


async def test_max_tokens_is_clamped_to_the_model_limit(
    client: RPCClient, fakes: dict[str, Any]
) -> None:
    await client.call("llm.complete", _params(model="claude-test", max_tokens=5000))
    assert fakes["anthropic"].requests[0].body["max_tokens"] == 100


async def test_every_provider_timing_out_is_a_timeout(
    client: RPCClient, fakes: dict[str, Any]
) -> None:
    fakes["anthropic"].behave(Behaviour(hang_s=2))
    fakes["gemini"].behave(Behaviour(hang_s=2))
    started = time.monotonic()
    with pytest.raises(Timeout, match="every provider timed out"):
        await client.call("llm.complete", _params(provider="anthropic"))
    assert time.monotonic() - started < 3.5


async def test_retry_after_on_the_last_provider_is_waited_out(
    client: RPCClient, fakes: dict[str, Any]
) -> None:
    fakes["openai"].behave(Behaviour(status=429, retry_after="1"))
    started = time.monotonic()
    result = await client.call("llm.complete", _params(tool="quick", provider="openai"))
    assert result["provider"] == "openai" and len(fakes["openai"].requests) == 2
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (_params(provider="nope"), NotFound),
        (_params(tool="no_such_tool"), NotFound),
        (_params(model="gemini/x", provider="anthropic"), InvalidParams),
        (_params(temperature=3), InvalidParams),
        # where a call goes is guardian configuration only (ARCHITECTURE.md 4.3)
        (_params(base_url="http://127.0.0.1:9/v1"), InvalidParams),
        (_params(headers={"authorization": "Bearer x"}), InvalidParams),
        (_params(env_key="OTHER_KEY"), InvalidParams),
        ({"caller": {"ip": "x"}, "tool": "llm_complete", "prompt": "p"}, InvalidParams),
    ],
)
async def test_bad_requests_get_typed_errors(
    client: RPCClient, params: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await client.call("llm.complete", params)


async def test_a_cancelled_stream_is_stopped_and_the_connection_keeps_serving(
    client: RPCClient, fakes: dict[str, Any]
) -> None:
    fakes["openai"].behave(Behaviour(stream_hold=True))
    before = fakes["openai"].disconnects
    async with client.stream("llm.stream", _params(provider="openai")) as stream:
        first = await anext(stream)
        assert first["text"]
    deadline = time.monotonic() + 5
    while fakes["openai"].disconnects == before:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await client.call("health", {}))["status"] == "ok"


async def test_a_refused_stream_request_does_not_fall_back(
    client: RPCClient, fakes: dict[str, Any]
) -> None:
    fakes["anthropic"].behave(Behaviour(status=404))
    with pytest.raises(ProviderError, match="refused the request"):
        async with client.stream("llm.stream", _params(provider="anthropic")) as stream:
            async for _ in stream:
                pass
    assert fakes["gemini"].requests == []


async def test_a_stream_broken_after_its_first_chunk_ends_with_an_error_not_a_fallback(
    client: RPCClient, fakes: dict[str, Any]
) -> None:
    fakes["anthropic"].behave(Behaviour(stream_abort_after=4))
    received = []
    with pytest.raises(ProviderError, match="broke after"):
        async with client.stream("llm.stream", _params(provider="anthropic")) as stream:
            async for chunk in stream:
                received.append(chunk)
    assert received  # some text arrived before the break ...
    assert fakes["gemini"].requests == []  # ... so no other provider was asked


async def test_usage_ledger_rows_are_written_in_batches(
    client: RPCClient, guardian_with_fakes: GuardianProcess
) -> None:
    await asyncio.gather(
        *(client.call("llm.complete", _params(provider="openai")) for _ in range(5))
    )
    await asyncio.sleep(0.4)  # the ledger is at most 100 ms behind
    db = sqlite3.connect(guardian_with_fakes.runtime / "guardian" / "guardian.db")
    rows = db.execute(
        "SELECT tool, provider, model, input_tokens, output_tokens, outcome FROM usage"
        " WHERE provider = 'openai' AND outcome = 'ok'"
    ).fetchall()
    db.close()
    assert len(rows) >= 5
    assert rows[-1] == ("llm_complete", "openai", "gpt-test", 10, 6, "ok")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
async def test_compressed_replies_plain_and_streamed(
    client: RPCClient, fakes: dict[str, Any], provider: str, encoding: str
) -> None:
    """A provider (or a proxy before it) that compresses its answers still works."""
    fakes[provider].compression = encoding
    try:
        result = await client.call("llm.complete", _params(provider=provider))
        assert result["text"] == fakes[provider].reply_text and result["provider"] == provider
        chunks = []
        async with client.stream("llm.stream", _params(provider=provider)) as stream:
            async for chunk in stream:
                chunks.append(chunk["text"])
        assert "".join(chunks) == fakes[provider].reply_text and stream.result["text"] == ""
        assert stream.result["provider"] == provider
        assert all("gzip" in r.headers.get("accept-encoding", "") for r in fakes[provider].requests)
    finally:
        fakes[provider].compression = None
