"""The official `anthropic` SDK against the real stack (`POST /v1/messages`, issue 27):
every provider wire format behind it, plain and streamed, tools, errors, count_tokens,
anthropic-beta and thinking."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic

from tests.e2e.world import World
from tests.fakes.base import Behaviour
from tests.fakes.providers import fake_token_count

MODELS = {
    "anthropic": "claude-test",
    "gemini": "gemini-test",
    "openrouter": "meta/llama:free",
    "huggingface": "hf/model",
}
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
HELLO: Any = [{"role": "user", "content": "Hello"}]


_clients: dict[str, Anthropic] = {}


def sdk(w: World) -> Anthropic:
    """The module's one SDK client for the stack: each client holds a connection pool, and
    one left to the garbage collector closes its socket with a ResourceWarning in whichever
    test is running then (closed at the module's end instead)."""
    if w.stack.url not in _clients:
        _clients[w.stack.url] = Anthropic(
            base_url=w.stack.url, api_key="unused-in-open-mode", max_retries=0
        )
    return _clients[w.stack.url]


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    for client in _clients.values():
        client.close()
    _clients.clear()


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_a_message_and_a_stream_with_each_provider(w: World, provider: str) -> None:
    client = sdk(w)
    reply = client.messages.create(
        model=MODELS[provider],
        max_tokens=64,
        system=[{"type": "text", "text": "Be brief."}],
        messages=HELLO,
    )
    expected = getattr(w, provider).reply_text
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text == expected  # type: ignore[union-attr]
    assert reply.stop_reason == "end_turn" and reply.usage.input_tokens > 0
    with client.messages.stream(model=MODELS[provider], max_tokens=64, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("streamed", [False, True])
def test_a_tool_use_round_trip_with_each_wire_format(
    w: World, provider: str, streamed: bool
) -> None:
    client = sdk(w)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    options: Any = {"model": MODELS[provider], "max_tokens": 64, "tools": [WEATHER]}
    if streamed:
        with client.messages.stream(messages=messages, **options) as stream:
            first = stream.get_final_message()
    else:
        first = client.messages.create(messages=messages, **options)
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
        },
    ]
    second = client.messages.create(messages=messages, **options)
    assert second.content[0].text == getattr(w, provider).reply_text  # type: ignore[union-attr]
    assert "Sunny" in json.dumps(getattr(w, provider).requests[-1].body)


def test_system_stop_sequences_metadata_and_an_image_reach_the_provider(w: World) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    sdk(w).messages.create(
        model="claude-test",
        max_tokens=64,
        system="Be brief.",
        stop_sequences=["END"],
        metadata={"user_id": "someone"},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png},
                    },
                ],
            }
        ],
    )
    body = w.anthropic.requests[-1].body
    assert body["system"] == "Be brief." and body["stop_sequences"] == ["END"]
    assert "metadata" not in body  # the hub's identity of the caller is its own
    assert body["messages"][0]["content"][1]["source"]["data"] == png


def test_errors_keep_anthropics_shape_and_status(w: World) -> None:
    client = sdk(w)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=8, messages=HELLO)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="top_k"):
        client.messages.create(
            model="claude-test", max_tokens=8, messages=HELLO, extra_body={"top_k": 3}
        )
    for fake in (w.anthropic, w.gemini, w.openrouter, w.huggingface):
        fake.behave(Behaviour(status=500))
    with pytest.raises(anthropic.APIStatusError) as failed:
        client.messages.create(model="claude-test", max_tokens=8, messages=HELLO)
    assert failed.value.status_code == 502
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    client.messages.create(model="rationed", max_tokens=8, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="rationed", max_tokens=8, messages=HELLO)
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    # refusals made before the route (body limit, content type) are Anthropic's shape too
    too_big = httpx.post(
        f"{w.stack.url}/v1/messages",
        content=b"{" * (5 * 1024 * 1024),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert too_big.status_code == 413
    assert too_big.json() == {
        "type": "error",
        "error": {"type": "request_too_large", "message": too_big.json()["error"]["message"]},
    }
    not_json = httpx.post(f"{w.stack.url}/v1/messages", content=b"{", timeout=10)
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    # the OpenAI routes keep OpenAI's shape
    other = httpx.post(f"{w.stack.url}/v1/chat/completions", content=b"{", timeout=10)
    assert (
        other.json()["error"]["type"] == "invalid_request_error" and "code" in other.json()["error"]
    )


def test_a_failure_mid_stream_ends_with_an_error_event(w: World) -> None:
    w.anthropic.behave(Behaviour(stream_abort_after=5))
    reply = httpx.post(
        f"{w.stack.url}/v1/messages",
        timeout=30,
        json={"model": "claude-test", "max_tokens": 64, "stream": True, "messages": HELLO},
    )
    names = [line[7:] for line in reply.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-1] == "error" and "message_stop" not in names
    last = json.loads(reply.text.strip().splitlines()[-1][6:])
    assert last["type"] == "error" and last["error"]["type"] == "api_error"
    with pytest.raises(anthropic.APIStatusError):
        w.anthropic.behave(Behaviour(stream_abort_after=5))
        with sdk(w).messages.stream(model="claude-test", max_tokens=64, messages=HELLO) as s:
            s.until_done()


def test_count_tokens_asks_anthropic_for_an_anthropic_model(w: World) -> None:
    """The official SDK's count_tokens: a model that resolves to an Anthropic provider is
    counted by that provider (the fake's own count), in Anthropic's `MessageTokensCount`."""
    client = sdk(w)
    before = len(w.anthropic.requests)
    counted = client.messages.count_tokens(
        model="claude-test", system="Be brief.", messages=HELLO, tools=[WEATHER]
    )
    assert isinstance(counted, anthropic.types.MessageTokensCount)
    (asked,) = w.anthropic.requests[before:]
    assert asked.path == "/v1/messages/count_tokens"
    assert asked.body["system"] == "Be brief." and asked.body["tools"][0]["name"] == "get_weather"
    assert counted.input_tokens == fake_token_count(asked.body)
    raw = client.messages.with_raw_response.count_tokens(model="claude-test", messages=HELLO)
    assert "x-sealgate-estimate" not in raw.headers
    assert json.loads(raw.http_response.text)["sealgate"]["estimate"] is False


@pytest.mark.parametrize("provider", ["gemini", "openrouter"])
def test_count_tokens_is_sealgates_marked_estimate_elsewhere(w: World, provider: str) -> None:
    client = sdk(w)
    fake = getattr(w, provider)
    before = len(fake.requests)
    counted = client.messages.count_tokens(model=MODELS[provider], system="S", messages=HELLO)
    measured = {"messages": [{"role": "user", "content": "Hello"}], "system": "S"}
    assert counted.input_tokens == len(json.dumps(measured, separators=(",", ":"))) + 16
    raw = client.messages.with_raw_response.count_tokens(model=MODELS[provider], messages=HELLO)
    assert raw.headers["x-sealgate-estimate"] == "bytes"
    assert json.loads(raw.http_response.text)["sealgate"]["estimate"] is True
    assert len(fake.requests) == before  # nothing asked of the provider


def test_count_tokens_of_an_unknown_model_is_not_found(w: World) -> None:
    with pytest.raises(anthropic.NotFoundError):
        sdk(w).messages.count_tokens(model="no-such-model", messages=HELLO)


def test_anthropic_beta_reaches_the_provider_only_from_its_allowlist(w: World) -> None:
    client = sdk(w)
    raw = client.messages.with_raw_response.create(
        model="claude-test",
        max_tokens=8,
        messages=HELLO,
        extra_headers={"anthropic-beta": "allowed-beta-2025-01-01,made-up-2025-02-02"},
    )
    assert w.anthropic.requests[-1].headers["anthropic-beta"] == "allowed-beta-2025-01-01"
    assert raw.headers["x-sealgate-dropped"] == "anthropic-beta=made-up-2025-02-02"
    client.messages.create(
        model="claude-test",
        max_tokens=8,
        messages=HELLO,
        extra_headers={"anthropic-beta": "made-up-2025-02-02"},
    )
    assert "anthropic-beta" not in w.anthropic.requests[-1].headers


def test_thinking_blocks_pass_through_an_anthropic_provider(w: World) -> None:
    client = sdk(w)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    reply = client.messages.create(
        model="claude-test", max_tokens=2048, thinking=thinking, messages=HELLO
    )
    assert [block.type for block in reply.content] == ["thinking", "text"]
    assert reply.content[0].signature == "fake-signature"  # type: ignore[union-attr]
    with client.messages.stream(
        model="claude-test", max_tokens=2048, thinking=thinking, messages=HELLO
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].signature == "fake-signature"  # type: ignore[union-attr]
    client.messages.create(
        model="claude-test",
        max_tokens=2048,
        thinking=thinking,
        messages=[*HELLO, {"role": "assistant", "content": final.content}, *HELLO],
    )
    sent = w.anthropic.requests[-1].body
    assert sent["thinking"] == thinking
    assert sent["messages"][1]["content"][0]["signature"] == "fake-signature"
    raw = client.messages.with_raw_response.create(
        model="gemini-test", max_tokens=64, thinking=thinking, messages=HELLO
    )
    assert raw.headers["x-sealgate-dropped"] == "anthropic=thinking"
    assert "thinking" not in json.dumps(w.gemini.requests[-1].body)


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("streamed", [False, True])
def test_a_matched_stop_sequence_is_reported_where_the_provider_says_which(
    w: World, provider: str, streamed: bool
) -> None:
    """Anthropic says which stop sequence ended the text: `stop_reason: "stop_sequence"` and
    the sequence. OpenAI-format and Gemini providers stop there too but say only "stop", so
    the answer is `end_turn` with no sequence."""
    fake = getattr(w, provider)
    fake.behave(Behaviour(text="one two THREE four"))
    options: Any = {
        "model": MODELS[provider],
        "max_tokens": 64,
        "messages": HELLO,
        "stop_sequences": ["FIVE", "THREE"],
    }
    if streamed:
        with sdk(w).messages.stream(**options) as stream:
            reply = stream.get_final_message()
    else:
        reply = sdk(w).messages.create(**options)
    assert reply.content[0].text == "one two "  # type: ignore[union-attr]
    if provider == "anthropic":
        assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "THREE"
    else:
        assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
