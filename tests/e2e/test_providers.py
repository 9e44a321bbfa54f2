"""Sealed provider calls end to end: official MCP client -> sandbox -> guardian -> fakes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.e2e.mcp_client import mcp_session
from tests.e2e.world import KEYS, World, call
from tests.fakes.base import Behaviour


@pytest.mark.parametrize(
    ("provider", "path", "key_header", "key_name"),
    [
        ("anthropic", "/v1/messages", "x-api-key", "ANTHROPIC_API_KEY"),
        ("gemini", "/v1beta/models/gemini-test", "x-goog-api-key", "GEMINI_API_KEY"),
        ("openrouter", "/v1/chat/completions", "authorization", "OPENROUTER_API_KEY"),
        ("huggingface", "/v1/chat/completions", "authorization", "HF_TOKEN"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_each_provider_end_to_end(
    w: World, provider: str, path: str, key_header: str, key_name: str, streamed: bool
) -> None:
    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        pass

    getattr(w, provider).requests.clear()
    result = await call(
        w,
        "llm_complete",
        {"prompt": "Say hi", "provider": provider, "system": "Be terse."},
        progress_callback=on_progress if streamed else None,  # progress asked: streamed
    )
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["provider"] == provider and data["fallback_path"] == []
    assert data["text"] == getattr(w, provider).reply_text
    assert data["usage"]["input_tokens"] > 0 and data["latency_ms"] > 0
    (request,) = getattr(w, provider).requests
    if provider == "gemini":
        path += ":streamGenerateContent" if streamed else ":generateContent"
    assert request.path == path
    # one of the provider's keys (they rotate) travels in a header ...
    own_keys = [value for name, value in KEYS.items() if name.startswith(key_name)]
    (key,) = [k for k in own_keys if k in request.headers[key_header]]
    assert key not in request.path and key not in json.dumps(request.query)  # ... never the URL
    body = json.dumps(request.body)
    assert "Say hi" in body and "Be terse." in body  # prompt and system prompt sent
    if provider == "anthropic":
        assert request.body["system"] == "Be terse."
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert data["cost_usd"] == pytest.approx((12 * 3 + 7 * 15) / 1e6)
    if provider == "gemini":
        assert request.query == ({"alt": "sse"} if streamed else {})
        assert request.body["systemInstruction"]["parts"][0]["text"] == "Be terse."
    if provider == "openrouter":
        assert request.headers["http-referer"] == "https://sealgate.test"
        assert request.body["messages"][0] == {"role": "system", "content": "Be terse."}


async def test_configured_tool_sends_its_system_prompt(w: World) -> None:
    result = await call(w, "summarize", {"prompt": "A long text."})
    assert not result.is_error, result.content
    assert w.anthropic.requests[0].body["system"] == "Summarize briefly."


async def test_fallback_walks_the_whole_chain_without_forwarding_a_pinned_model(w: World) -> None:
    w.anthropic.behave(Behaviour(status=500))
    w.gemini.behave(Behaviour(status=429, retry_after="1"))
    w.openrouter.behave(Behaviour(hang_s=3))  # past its 1 s timeout
    result = await call(w, "llm_complete", {"prompt": "hi", "model": "anthropic/claude-pinned"})
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["provider"] == "huggingface" and data["text"] == w.huggingface.reply_text
    assert [step["provider"] for step in data["fallback_path"]] == [
        "anthropic",
        "gemini",
        "openrouter",
    ]
    assert "HTTP 500" in data["fallback_path"][0]["error"]
    assert "HTTP 429" in data["fallback_path"][1]["error"]
    assert "timed out" in data["fallback_path"][2]["error"]
    assert w.anthropic.requests[0].body["model"] == "claude-pinned"
    assert w.gemini.requests[0].path.endswith("/gemini-test:generateContent")
    assert w.openrouter.requests[0].body["model"] == "meta/llama:free"
    assert w.huggingface.requests[0].body["model"] == "hf/model"


async def test_no_fallback_on_a_refused_request(w: World) -> None:
    w.anthropic.behave(Behaviour(status=400, error_message="max_tokens: too large"))
    result = await call(w, "llm_complete", {"prompt": "hi", "provider": "anthropic"})
    assert result.is_error
    message = result.content[0].text
    assert (
        message.startswith("provider_error:") and "anthropic" in message and "HTTP 400" in message
    )
    assert w.gemini.requests == []


async def test_every_provider_failing_names_each_cause(w: World) -> None:
    for fake in (w.anthropic, w.gemini, w.openrouter, w.huggingface):
        fake.behave(Behaviour(status=503))
    result = await call(w, "llm_complete", {"prompt": "hi"})
    assert result.is_error
    message = result.content[0].text
    for name in ("anthropic", "gemini", "openrouter", "huggingface"):
        assert f"{name}: HTTP 503" in message


async def test_second_key_is_used_when_the_first_is_refused(w: World) -> None:
    w.anthropic.refuse_keys = {KEYS["ANTHROPIC_API_KEY"]}
    for _ in range(2):  # rotation may start at either key; both calls must succeed on the second
        result = await call(w, "llm_complete", {"prompt": "hi", "provider": "anthropic"})
        assert not result.is_error, result.content
        assert result.structured_content["provider"] == "anthropic"
        assert result.structured_content["fallback_path"] == []
    assert w.gemini.requests == []
    used = [r.headers["x-api-key"] for r in w.anthropic.requests]
    assert used.count(KEYS["ANTHROPIC_API_KEY_2"]) == 2


async def test_keyless_local_provider(w: World) -> None:
    result = await call(w, "llm_complete", {"prompt": "hi", "provider": "local"})
    assert not result.is_error, result.content
    assert result.structured_content["text"] == w.local.reply_text
    assert "authorization" not in w.local.requests[0].headers


async def test_streaming_arrives_in_several_chunks_with_progress(w: World) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    w.anthropic.event_delay_s = 0.15  # about a second in all: progress every 0.25 s
    try:
        result = await call(
            w,
            "llm_complete",
            {"prompt": "hi", "provider": "anthropic"},
            progress_callback=on_progress,
        )
    finally:
        w.anthropic.event_delay_s = 0.005
    assert not result.is_error
    assert len(progress) >= 3 and progress == sorted(progress)
    assert 0 < progress[-1] <= len(w.anthropic.reply_text)
    assert w.anthropic.requests[-1].body.get("stream") is True


async def test_without_a_progress_token_the_call_is_not_streamed(w: World) -> None:
    """Streaming costs chunks on both sockets; a client that asked for no progress gets
    the same answer from one plain call."""
    result = await call(w, "llm_complete", {"prompt": "hi", "provider": "anthropic"})
    assert not result.is_error
    assert result.structured_content["text"] == w.anthropic.reply_text
    assert "stream" not in w.anthropic.requests[-1].body


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_cancelled_call_stops_the_provider_request(w: World, streamed: bool) -> None:
    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        pass

    # streamed: the first chunks flow, then the fake holds the stream; plain: it never answers
    w.openrouter.behave(Behaviour(stream_hold=True) if streamed else Behaviour(hang_s=20))
    w.openrouter.requests.clear()
    task = asyncio.create_task(
        call(
            w,
            "llm_complete",
            {"prompt": "hi", "provider": "openrouter"},
            progress_callback=on_progress if streamed else None,
        )
    )
    deadline = time.monotonic() + 10
    while not w.openrouter.requests:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    before = w.openrouter.disconnects
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while w.openrouter.disconnects == before:
        assert time.monotonic() < deadline, "the provider request was not stopped"
        await asyncio.sleep(0.05)


async def test_web_search_with_fallback_to_tavily(w: World) -> None:
    result = await call(w, "web_search", {"query": "sealgate", "max_results": 3})
    assert not result.is_error, result.content
    assert result.structured_content["provider"] == "brave"
    assert len(result.structured_content["results"]) == 3
    request = w.brave.requests[0]
    assert request.query == {"q": "sealgate", "count": "3"}
    assert request.headers["x-subscription-token"] == KEYS["BRAVE_API_KEY"]
    w.brave.behave(Behaviour(status=500))
    result = await call(w, "web_search", {"query": "sealgate", "max_results": 2})
    data = result.structured_content
    assert data["provider"] == "tavily" and data["answer"] == "a fake answer"
    assert w.tavily.requests[0].headers["authorization"] == f"Bearer {KEYS['TAVILY_API_KEY']}"


async def test_model_info_and_active_tools(w: World) -> None:
    info = await call(w, "get_model_info", {"model": "claude-test"})
    (model,) = info.structured_content["models"]
    assert model["cost_output_per_1m"] == 15 and model["max_output_tokens"] == 512
    missing = await call(w, "get_model_info", {"model": "nope"})
    assert missing.is_error and "not_found" in missing.content[0].text
    active = await call(w, "list_active_tools", {})
    data = active.structured_content
    assert {"llm_complete", "summarize", "web_search", "get_model_info"} <= set(data["tools"])
    assert set(data["llm_providers"]) == {
        "anthropic",
        "gemini",
        "openrouter",
        "huggingface",
        "local",
    }
    assert data["search_providers"] == ["brave", "tavily"]


async def test_a_malformed_provider_reply_is_a_clear_error(w: World) -> None:
    w.huggingface.behave(Behaviour(malformed=True))
    result = await call(w, "llm_complete", {"prompt": "hi", "provider": "huggingface"})
    assert result.is_error
    assert "malformed" in result.content[0].text or "not JSON" in result.content[0].text


async def test_no_key_appears_in_responses_logs_or_the_sandbox(w: World) -> None:
    # A provider that echoes the refused key in its error text: the guardian redacts it.
    w.anthropic.refuse_keys = {KEYS["ANTHROPIC_API_KEY"], KEYS["ANTHROPIC_API_KEY_2"]}
    w.gemini.refuse_keys = {KEYS["GEMINI_API_KEY"]}
    for fake in (w.openrouter, w.huggingface):
        fake.behave(Behaviour(status=500))
    result = await call(w, "llm_complete", {"prompt": "hi"})
    assert result.is_error
    text = json.dumps(result.model_dump())
    assert "invalid api key [REDACTED]" in text
    sandbox = w.stack.pid_of("sandbox")
    with open(f"/proc/{sandbox}/environ", "rb") as environ:
        env = environ.read().decode(errors="replace")
    logs = w.stack.logs()
    for value in KEYS.values():
        assert value not in text
        assert value not in env
        assert value not in logs


def test_tools_are_absent_when_their_keys_are(stack_factory: Any) -> None:
    stack = stack_factory(env={"ANTHROPIC_API_KEY": "fake-ant-only-one-key-000000"})

    async def names() -> list[str]:
        async with mcp_session(stack.url) as client:
            return sorted(t.name for t in (await client.list_tools()).tools)

    tools = asyncio.run(names())
    assert "llm_complete" in tools and "code_review" in tools
    assert "web_search" not in tools
    bare = stack_factory(env={})
    assert asyncio.run(_names_of(bare.url)) == [
        "get_model_info",
        "health_check",
        "list_active_tools",
    ]
    assert "No provider key is configured" in __import__("httpx").get(f"{bare.url}/").text
    assert "serving the built-in tools only" in bare.logs()


async def _names_of(url: str) -> list[str]:
    async with mcp_session(url) as client:
        return sorted(t.name for t in (await client.list_tools()).tools)
