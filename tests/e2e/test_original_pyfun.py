"""A `.pyfun` written for the original Universal MCP Hub runs a real stack, and what its
keys mean takes effect: retries before fallback, the parallel cap, per-day model limits,
OpenRouter attribution, Anthropic's version header, search defaults, model info, call logs.

The file is tests/data/original_hub.pyfun; only its endpoints are pointed at the fakes (with
`allow_insecure`, since the fakes speak plain http on loopback)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.e2e.mcp_client import mcp_session
from tests.fakes.base import Behaviour, FakeServer
from tests.fakes.providers import FakeAnthropic, FakeBrave, FakeOpenAI, FakeTavily
from tests.helpers import ROOT, Stack

ORIGINAL = ROOT / "tests" / "data" / "original_hub.pyfun"
SPACE_URL = "https://example-user-universal-mcp-hub.hf.space"
KEYS = {
    "ANTHROPIC_API_KEY": "fake-ant-original-00000000000011",
    "OPENROUTER_API_KEY": "fake-or-original-000000000000012",
    "BRAVE_API_KEY": "BSA-FAKE-original-0000000000000013",
    "TAVILY_API_KEY": "fake-tvly-original-000000000000014",
}


class CountingAnthropic(FakeAnthropic):
    """Anthropic's fake that also counts the requests it holds at once."""

    in_flight = 0
    peak = 0

    async def messages(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().messages(request)
        finally:
            self.in_flight -= 1


@dataclass
class Original:
    stack: Stack
    anthropic: CountingAnthropic
    openrouter: FakeOpenAI
    brave: FakeBrave
    tavily: FakeTavily

    @property
    def fakes(self) -> list[FakeServer]:
        return [self.anthropic, self.openrouter, self.brave, self.tavily]


def pointed_at(fakes: dict[str, FakeServer]) -> str:
    """The original file with each real endpoint replaced by its fake's."""
    endpoints = {
        "https://api.anthropic.com/v1": f"{fakes['anthropic'].base}/v1",
        "https://openrouter.ai/api/v1": f"{fakes['openrouter'].base}/v1",
        "https://api.search.brave.com/res/v1/web/search": (
            f"{fakes['brave'].base}/res/v1/web/search"
        ),
        "https://api.tavily.com/search": f"{fakes['tavily'].base}/search",
    }
    text = ORIGINAL.read_text()
    for real, fake in endpoints.items():
        text, count = re.subn(
            rf'base_url(\s*)= "{re.escape(real)}"',
            rf'base_url\1= "{fake}"\n    allow_insecure = "true"',
            text,
        )
        assert count == 1, real
    return text


@pytest.fixture(scope="module")
def original() -> Iterator[Original]:
    fakes: dict[str, Any] = {
        "anthropic": CountingAnthropic(name="anthropic", reply_text="Claude answers you"),
        "openrouter": FakeOpenAI(name="openrouter", reply_text="OpenRouter answers you"),
        "brave": FakeBrave(name="brave"),
        "tavily": FakeTavily(name="tavily"),
    }
    for fake in fakes.values():
        fake.start()
    stack = Stack(env=KEYS, config_text=pointed_at(fakes))
    try:
        stack.start()
        yield Original(stack=stack, **fakes)
    finally:
        stack.cleanup()
        for fake in fakes.values():
            fake.stop()


@pytest.fixture
def o(original: Original) -> Original:
    for fake in original.fakes:
        fake.requests.clear()
        fake.default = Behaviour()
        fake._queue.clear()
    original.anthropic.peak = 0
    return original


async def call(o: Original, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with mcp_session(o.stack.url) as client:
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    data: dict[str, Any] = result.structured_content
    return data


def test_the_original_file_boots_and_says_what_it_ignored(o: Original) -> None:
    logs = o.stack.logs()
    for fragment in (
        "HUB_VERSION ignored",
        "[WEB_PROVIDERS] of the original hub is ignored",
        "LOG_REQUESTS logs metadata only",
        "it names another block",
    ):
        assert fragment in logs, fragment
    assert "Traceback" not in logs


async def test_a_failure_is_retried_on_the_same_provider_before_fallback(o: Original) -> None:
    o.anthropic.behave(Behaviour(status=503))
    data = await call(o, "llm_complete", {"prompt": "hi"})
    assert data["provider"] == "anthropic" and data["fallback_path"] == []
    assert data["text"] == o.anthropic.reply_text
    assert len(o.anthropic.requests) == 2 and o.openrouter.requests == []
    # api_version_header reaches Anthropic (SealGate's own default is 2023-06-01)
    assert {r.headers["anthropic-version"] for r in o.anthropic.requests} == {"2023-01-01"}


async def test_a_retry_waits_out_retry_after(o: Original) -> None:
    o.anthropic.behave(Behaviour(status=429, retry_after="1"))
    started = time.monotonic()
    data = await call(o, "llm_complete", {"prompt": "hi"})
    assert data["provider"] == "anthropic" and len(o.anthropic.requests) == 2
    assert time.monotonic() - started >= 1.0  # not RETRY_DELAY_SEC's 0.2 s


async def test_after_its_retries_the_chain_moves_on_with_openrouter_attribution(
    o: Original,
) -> None:
    o.anthropic.behave(Behaviour(status=503), Behaviour(status=502))
    data = await call(o, "llm_complete", {"prompt": "hi"})
    assert data["provider"] == "openrouter" and data["text"] == o.openrouter.reply_text
    assert [step["provider"] for step in data["fallback_path"]] == ["anthropic"]
    assert len(o.anthropic.requests) == 2  # RETRY_COUNT = 1: one retry, then fallback
    (request,) = o.openrouter.requests
    assert request.headers["http-referer"] == SPACE_URL
    assert request.headers["x-title"] == "Universal MCP Hub"


def test_no_retry_once_a_streamed_chunk_was_passed_on(o: Original) -> None:
    o.anthropic.behave(Behaviour(stream_abort_after=4))  # after two text deltas
    with httpx.stream(
        "POST",
        f"{o.stack.url}/v1/chat/completions",
        json={
            "model": "claude-haiku-4-5",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=30,
    ) as response:
        body = b"".join(response.iter_bytes()).decode()
    assert "Claude" in body  # the first chunks reached the caller ...
    assert len(o.anthropic.requests) == 1  # ... so the provider is not asked again
    assert o.openrouter.requests == []


async def test_max_parallel_requests_caps_one_provider(o: Original) -> None:
    o.anthropic.default = Behaviour(hang_s=0.4)
    results = await asyncio.gather(
        *(call(o, "llm_complete", {"prompt": f"hi {n}"}) for n in range(5))
    )
    assert {r["provider"] for r in results} == {"anthropic"}
    assert len(o.anthropic.requests) == 5
    assert o.anthropic.peak == 2  # MAX_PARALLEL_REQUESTS = 2


async def test_requests_per_day_is_enforced_per_model(o: Original) -> None:
    for _ in range(2):
        data = await call(o, "llm_complete", {"prompt": "hi", "model": "claude-sonnet-4-5"})
        assert data["provider"] == "anthropic"
    data = await call(o, "llm_complete", {"prompt": "hi", "model": "claude-sonnet-4-5"})
    # the pinned model is rationed for today: the chain moves on to OpenRouter's own model
    assert data["provider"] == "openrouter"
    assert "per day" in data["fallback_path"][0]["error"]
    sonnet = [r for r in o.anthropic.requests if r.body["model"] == "claude-sonnet-4-5"]
    assert len(sonnet) == 2


async def test_get_model_info_shows_the_original_model_keys(o: Original) -> None:
    data = await call(o, "get_model_info", {"model": "claude-haiku-4-5"})
    (model,) = data["models"]
    assert model["requests_per_day"] == 1000 and model["requests_per_min"] == 50
    assert model["context_tokens"] == model["context_window"] == 200_000
    assert (model["cost_input_per_1k"], model["cost_output_per_1k"]) == (0.001, 0.005)
    assert (model["cost_input_per_1m"], model["cost_output_per_1m"]) == (1.0, 5.0)
    assert model["capabilities"] == ["text", "code", "vision"]


async def test_search_default_results_max_results_and_include_answer(o: Original) -> None:
    await call(o, "web_search", {"query": "sealgate"})
    await call(o, "web_search", {"query": "sealgate", "max_results": 20})
    assert [r.query["count"] for r in o.brave.requests] == ["3", "10"]
    data = await call(o, "web_search", {"query": "sealgate", "provider": "tavily"})
    (request,) = o.tavily.requests
    assert request.body["include_answer"] is False and request.body["max_results"] == 5
    assert len(data["results"]) == 5


async def test_log_requests_and_responses_log_metadata_only(o: Original) -> None:
    prompt = "a-private-prompt-7f3e"
    await call(o, "llm_complete", {"prompt": prompt})
    logs = o.stack.logs()
    assert "request tool=llm_complete provider=anthropic model=claude-haiku-4-5" in logs
    assert "response tool=llm_complete provider=anthropic" in logs and "outcome=ok" in logs
    assert prompt not in logs and o.anthropic.reply_text not in logs
    for key in KEYS.values():
        assert key not in logs
    assert json.dumps(prompt) not in logs
