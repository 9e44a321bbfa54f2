"""Every client dialect (Anthropic's Messages, OpenAI's Responses and Chat Completions)
reaches every provider wire format (issue 27, item 3): a request parsed by a dialect, planned
into the guardian's `ChatRequest`, is sent correctly by each adapter. Anthropic's extras
(anthropic-beta, thinking and the other Anthropic-only fields) reach an Anthropic provider only
as its guardian configuration allows, and are reported as dropped elsewhere."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guardian.providers.adapters import (
    AnthropicAdapter,
    GeminiAdapter,
    OpenAIAdapter,
    dropped_extras,
)
from guardian.providers.types import ChatRequest, StreamState
from protocol.dialects import anthropic as messages_dialect
from protocol.dialects import chat as chat_dialect
from protocol.dialects import responses as responses_dialect
from protocol.dialects.core import Completion
from protocol.pyfun import ProviderConfig

PNG = "iVBORw0KGgo="


def provider(api: str, **extra: Any) -> ProviderConfig:
    return ProviderConfig(
        name=api, kind="llm", api=api, base_url="https://x.example/v1", env_keys=("K",), **extra
    )


ADAPTERS = {"anthropic": AnthropicAdapter, "gemini": GeminiAdapter, "openai": OpenAIAdapter}


def planned(completion: Completion) -> ChatRequest:
    """What `guardian.calls.planning` makes of the sealed call's params."""
    params = completion.to_params()
    return ChatRequest(
        model="m-1",
        messages=params["messages"],
        system=params.get("system", ""),
        max_tokens=params.get("max_tokens", 1024),
        temperature=params.get("temperature"),
        tools=params.get("tools"),
        tool_choice=params.get("tool_choice"),
        response_format=params.get("response_format"),
        stop=params.get("stop"),
        betas=tuple(params.get("betas") or ()),
        anthropic=params.get("anthropic"),
    )


CONVERSATION = {
    "model": "claude-test",
    "max_tokens": 50,
    "system": [{"type": "text", "text": "Be brief."}],
    "stop_sequences": ["END"],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}],
        },
    ],
}


@pytest.mark.parametrize("api", sorted(ADAPTERS))
@pytest.mark.parametrize("stream", [False, True])
def test_a_messages_conversation_reaches_each_wire_format(api: str, stream: bool) -> None:
    request = planned(messages_dialect.parse_request(CONVERSATION))
    call = ADAPTERS[api](provider(api)).chat("KEY", request, stream=stream)
    body = call.json
    text = json.dumps(body)
    assert "Be brief." in text and "Sunny" in text and PNG in text and "get_weather" in text
    if api == "anthropic":
        assert body["system"] == "Be brief." and body["stop_sequences"] == ["END"]
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["messages"][1]["content"][0]["type"] == "tool_use"
        assert body["messages"][2]["content"][0]["type"] == "tool_result"
        assert body["tool_choice"] == {"type": "auto"}
    elif api == "gemini":
        assert body["generationConfig"]["stopSequences"] == ["END"]
        assert body["contents"][1]["parts"][0]["functionCall"]["args"] == {"city": "Paris"}
        assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    else:
        assert body["stop"] == ["END"]
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
        assert body["messages"][3]["tool_call_id"] == "toolu_1"


RESPONSES_CONVERSATION = {
    "model": "m",
    "instructions": "Be brief.",
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
    "tool_choice": "auto",
    "store": False,
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather here?"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
            ],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
    ],
}


@pytest.mark.parametrize("api", sorted(ADAPTERS))
@pytest.mark.parametrize("stream", [False, True])
def test_a_responses_conversation_reaches_each_wire_format(api: str, stream: bool) -> None:
    request = planned(responses_dialect.parse_request(RESPONSES_CONVERSATION))
    body = ADAPTERS[api](provider(api)).chat("KEY", request, stream=stream).json
    text = json.dumps(body)
    assert "Be brief." in text and "Sunny" in text and PNG in text and "get_weather" in text
    if api == "anthropic":
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["messages"][1]["content"][0]["id"] == "call_1"
        assert body["messages"][2]["content"][0]["tool_use_id"] == "call_1"
    elif api == "gemini":
        assert body["contents"][1]["parts"][0]["functionCall"]["args"] == {"city": "Paris"}
        assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    else:
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]


CHAT_CONVERSATION = {
    "model": "m",
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
    "tool_choice": "auto",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
    ],
}


@pytest.mark.parametrize("api", sorted(ADAPTERS))
@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_conversation_reaches_each_wire_format(api: str, stream: bool) -> None:
    chat = chat_dialect.parse_request(chat_dialect.check_request(CHAT_CONVERSATION))
    body = ADAPTERS[api](provider(api)).chat("KEY", planned(chat), stream=stream).json
    text = json.dumps(body)
    assert "Be brief." in text and "Sunny" in text and PNG in text and "get_weather" in text
    if api == "anthropic":
        assert body["system"] == "Be brief."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["messages"][1]["content"][0]["input"] == {"city": "Paris"}
        assert body["messages"][2]["content"][0]["tool_use_id"] == "call_1"
    elif api == "gemini":
        assert body["contents"][1]["parts"][0]["functionCall"]["args"] == {"city": "Paris"}
        assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    else:
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]


def thinking_request(betas: tuple[str, ...] = ()) -> ChatRequest:
    return planned(
        messages_dialect.parse_request(
            {
                "model": "claude-test",
                "max_tokens": 2048,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "output_config": {"effort": "high"},
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                            {"type": "text", "text": "Hello"},
                        ],
                    },
                    {"role": "user", "content": "Again"},
                ],
            },
            betas=betas,
        )
    )


def test_thinking_and_its_blocks_reach_an_anthropic_provider_unchanged() -> None:
    body = AnthropicAdapter(provider("anthropic")).chat("K", thinking_request(), stream=False).json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["output_config"] == {"effort": "high"}
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Hello"},
    ]


@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_other_providers_never_get_thinking_and_it_is_reported_dropped(api: str) -> None:
    request = thinking_request()
    body = ADAPTERS[api](provider(api)).chat("K", request, stream=False).json
    assert "thinking" not in json.dumps(body) and "sig" not in json.dumps(body)
    assert "effort" not in json.dumps(body)
    assert dropped_extras(provider(api), request) == {"anthropic": ["output_config", "thinking"]}


def test_anthropic_beta_is_sent_only_from_the_providers_allowlist() -> None:
    request = thinking_request(betas=("allowed-2025-01-01", "other-2025-02-02"))
    plain = provider("anthropic")
    call = AnthropicAdapter(plain).chat("K", request, stream=False)
    assert "anthropic-beta" not in call.headers
    assert dropped_extras(plain, request) == {
        "anthropic-beta": ["allowed-2025-01-01", "other-2025-02-02"]
    }
    listed = provider("anthropic", anthropic_beta=("allowed-2025-01-01",))
    call = AnthropicAdapter(listed).chat("K", request, stream=False)
    assert call.headers["anthropic-beta"] == "allowed-2025-01-01"
    assert dropped_extras(listed, request) == {"anthropic-beta": ["other-2025-02-02"]}
    openai = provider("openai")
    assert "anthropic-beta" not in OpenAIAdapter(openai).chat("K", request, stream=False).headers


def test_an_anthropic_reply_keeps_its_thinking_blocks() -> None:
    adapter = AnthropicAdapter(provider("anthropic"))
    result = adapter.parse_chat(
        {
            "model": "m",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "text", "text": "Hi"},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 2},
        }
    )
    assert result.text == "Hi"
    assert [b["type"] for b in result.thinking] == ["thinking", "redacted_thinking"]
    state = StreamState()
    start = adapter.parse_event(
        "",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        state,
    )
    delta = adapter.parse_event(
        "",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"},
        },
        state,
    )
    signature = adapter.parse_event(
        "",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "s"},
        },
        state,
    )
    assert start is not None and start.thinking == {"thinking": ""}
    assert delta is not None and delta.thinking == {"thinking": "hm"}
    assert signature is not None and signature.thinking == {"signature": "s"}
