"""OpenAI's Chat Completions dialect (issue 27, one translation core): a checked
`ChatRequest` parsed into the one request (exactly what `llm.complete` took before), the
guardian's answer from each provider wire format rendered as a `chat.completion`, and a
stream as `chat.completion.chunk` events, each checked against the official `openai` SDK's
`ChatCompletion` / `ChatCompletionChunk` types and its stream accumulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from guardian.providers.adapters import AnthropicAdapter, GeminiAdapter, OpenAIAdapter
from guardian.providers.types import ChatResult
from protocol.dialects import chat as dialect
from protocol.dialects.core import Answer, DialectError, events_of
from protocol.pyfun import ProviderConfig

HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}

REQUESTS: list[dict[str, Any]] = [
    {"model": "m", "messages": HI},
    {"model": "m", "messages": HI, "max_tokens": 5, "max_completion_tokens": 7, "temperature": 1},
    {"model": "p/m", "messages": HI, "tools": [WEATHER], "tool_choice": "auto", "stream": True},
    {"model": "m", "messages": HI, "response_format": {"type": "json_object"}, "user": "u"},
    {"model": "m", "messages": HI, "stream": True, "stream_options": {"include_usage": True}},
]


@pytest.mark.parametrize("body", REQUESTS)
def test_a_chat_request_becomes_exactly_what_llm_complete_took(body: dict[str, Any]) -> None:
    chat = dialect.check_request(body)
    completion = dialect.parse_request(chat)
    assert completion.to_params() == chat.llm_fields()
    assert completion.stream is bool(body.get("stream"))
    assert dialect.include_usage(chat) is bool(body.get("stream_options"))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": HI, "seed": 1}, "seed"),
        ({"messages": HI}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": HI, "n": 2}, "n"),
        ({"model": "m", "messages": HI, "max_tokens": 0}, None),
    ],
)
def test_what_is_not_a_chat_request_is_refused_naming_the_field(
    body: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(DialectError) as refused:
        dialect.check_request(body)
    assert refused.value.param == param


def provider(api: str) -> ProviderConfig:
    return ProviderConfig(
        name=api, kind="llm", api=api, base_url="https://x.example/v1", env_keys=("K",)
    )


#: One provider reply per wire format (text, then a tool call), as its adapter reads it.
REPLIES: dict[str, tuple[Any, Any]] = {
    "openai": (
        {
            "model": "gpt-x",
            "choices": [{"message": {"content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
        {
            "model": "gpt-x",
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"c": 1}'},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
    ),
    "anthropic": (
        {
            "model": "claude-x",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2},
        },
        {
            "model": "claude-x",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": 1}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 3, "output_tokens": 2},
        },
    ),
    "gemini": (
        {
            "modelVersion": "gemini-x",
            "candidates": [{"content": {"parts": [{"text": "Hello!"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
        },
        {
            "modelVersion": "gemini-x",
            "candidates": [
                {
                    "content": {
                        "parts": [{"functionCall": {"name": "get_weather", "args": {"c": 1}}}]
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
        },
    ),
}
ADAPTERS = {"anthropic": AnthropicAdapter, "gemini": GeminiAdapter, "openai": OpenAIAdapter}


def guardian_result(result: ChatResult) -> dict[str, Any]:
    """What `guardian.calls.router` answers for a provider's reply (the fields read here)."""
    return {
        "text": result.text,
        "model": result.model,
        "finish_reason": result.finish_reason,
        "tool_calls": result.tool_calls,
        "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
    }


@pytest.mark.parametrize("api", sorted(REPLIES))
def test_an_answer_from_each_wire_format_renders_as_the_sdks_chat_completion(api: str) -> None:
    adapter = ADAPTERS[api](provider(api))
    text_reply, tool_reply = (adapter.parse_chat(reply) for reply in REPLIES[api])
    rendered = dialect.render_completion(Answer.of(guardian_result(text_reply)), "chatcmpl-1", 7)
    completion = ChatCompletion.model_validate(rendered)
    assert completion.choices[0].message.content == "Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    rendered = dialect.render_completion(Answer.of(guardian_result(tool_reply)), "chatcmpl-2", 7)
    completion = ChatCompletion.model_validate(rendered)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"c": 1}


STREAM: list[dict[str, Any]] = [
    {"text": "Hel"},
    {"thinking": {"thinking": "hidden in this dialect"}},
    {"text": "lo"},
    {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    },
    {"tool_calls": [{"index": 0, "function": {"arguments": '{"c":'}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]},
]
END = {
    "text": "",
    "model": "m-1",
    "finish_reason": "tool_calls",
    "tool_calls": [],
    "usage": {"input_tokens": 4, "output_tokens": 6},
}


@pytest.mark.parametrize("with_usage", [False, True])
def test_a_stream_renders_as_the_sdks_chunks(with_usage: bool) -> None:
    renderer = dialect.ChunkStream("chatcmpl-1", 7, "m")
    wire = [renderer.start()]
    wire += [data for chunk in STREAM if (data := renderer.feed(events_of(chunk)))]
    wire += renderer.finish(Answer.of(END), {"provider": "p"}, with_usage)
    assert wire[-1] == b"data: [DONE]\n\n"
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    payloads = []
    for data in wire[:-1]:
        assert data.startswith(b"data: ") and data.endswith(b"\n\n")
        payloads.append(json.loads(data[len(b"data: ") :]))
        state.handle_chunk(ChatCompletionChunk.model_validate(payloads[-1]))
    # the role chunk, five deltas (the thinking chunk sends nothing), the end, the usage
    assert len(payloads) == 7 + (1 if with_usage else 0)
    assert payloads[-1 - with_usage]["sealgate"] == {"provider": "p"}
    final = state.get_final_completion()
    choice = final.choices[0]
    assert choice.message.content == "Hello" and choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_1" and json.loads(call.function.arguments) == {"c": 1}
    if with_usage:
        assert final.usage is not None and final.usage.total_tokens == 10


def test_a_failing_stream_ends_with_openais_error_object() -> None:
    data = dialect.ChunkStream("c", 1, "m").error("every provider failed", "api_error", "x")
    error = json.loads(data[len(b"data: ") :])["error"]
    assert error == {
        "message": "every provider failed",
        "type": "api_error",
        "code": "x",
        "param": None,
    }
