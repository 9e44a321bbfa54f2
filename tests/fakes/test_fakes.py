"""The fakes answer in the shapes the official SDKs parse; if they drift, tests here fail."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeAnthropic, FakeBrave, FakeGemini, FakeOpenAI, FakeTavily


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(name="anthropic").start()
    yield fake
    fake.stop()


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(name="openai").start()
    yield fake
    fake.stop()


def _data_lines(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def test_anthropic_replies_parse_as_sdk_types(anthropic: FakeAnthropic) -> None:
    body = {
        "model": "claude-test",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    reply = httpx.post(f"{anthropic.base}/v1/messages", json=body, headers={"x-api-key": "k"})
    message = Message.model_validate(reply.json())
    assert message.content[0].text == anthropic.reply_text  # type: ignore[union-attr]
    streamed = httpx.post(f"{anthropic.base}/v1/messages", json={**body, "stream": True})
    adapter: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
    events = [
        adapter.validate_python(json.loads(d))
        for d in _data_lines(streamed.text)
        if json.loads(d)["type"] != "ping"
    ]
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    anthropic.behave(Behaviour(status=429, retry_after="3"))
    refused = httpx.post(f"{anthropic.base}/v1/messages", json=body)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "3"


def test_openai_replies_parse_as_sdk_types(openai: FakeOpenAI) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{openai.base}/v1/chat/completions", json=body)
    completion = ChatCompletion.model_validate(reply.json())
    assert completion.choices[0].message.content == openai.reply_text
    streamed = httpx.post(
        f"{openai.base}/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    lines = _data_lines(streamed.text)
    assert lines[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(line) for line in lines[:-1]]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == openai.reply_text and chunks[-1].usage is not None


def test_fakes_refuse_listed_keys_and_misbehave_on_demand(openai: FakeOpenAI) -> None:
    openai.refuse_keys = {"bad-key"}
    refused = httpx.post(
        f"{openai.base}/v1/chat/completions",
        json={"model": "m", "messages": []},
        headers={"authorization": "Bearer bad-key"},
    )
    assert refused.status_code == 401 and "bad-key" in refused.text
    openai.behave(Behaviour(malformed=True))
    garbled = httpx.post(f"{openai.base}/v1/chat/completions", json={"model": "m", "messages": []})
    with pytest.raises(ValueError):
        garbled.json()
    openai.behave(Behaviour(hang_s=2))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{openai.base}/v1/chat/completions", json={"model": "m"}, timeout=0.3)


def test_gemini_brave_tavily_answer_their_documented_shapes() -> None:
    gemini, brave, tavily = FakeGemini().start(), FakeBrave().start(), FakeTavily().start()
    try:
        reply = httpx.post(f"{gemini.base}/v1beta/models/gemini-test:generateContent", json={})
        assert reply.json()["candidates"][0]["content"]["parts"][0]["text"] == gemini.reply_text
        streamed = httpx.post(
            f"{gemini.base}/v1beta/models/gemini-test:streamGenerateContent?alt=sse", json={}
        )
        assert len(_data_lines(streamed.text)) > 2
        results = httpx.get(f"{brave.base}/res/v1/web/search", params={"q": "x", "count": 3})
        assert len(results.json()["web"]["results"]) == 3
        found = httpx.post(f"{tavily.base}/search", json={"query": "x", "max_results": 2})
        assert len(found.json()["results"]) == 2 and found.json()["answer"]
    finally:
        for fake in (gemini, brave, tavily):
            fake.stop()
