"""The Anthropic Messages dialect: parsed into the one request, rendered from the one answer
and stream, each rendering checked against the official `anthropic` SDK's own types."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse

from protocol.dialects import anthropic as dialect
from protocol.dialects.core import Answer, Completion, DialectError, events_of

PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
WEATHER_FN = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": WEATHER["input_schema"],
        "description": "Weather for a city",
    },
}


def base(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-test", "max_tokens": 64, **fields}


PARSED = [
    (
        "system messages in the conversation (as Claude Code sends them); one cleared at the"
        " next user message is gone once there is one",
        base(
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": [{"type": "text", "text": "Env: linux"}]},
                {"role": "system", "content": "Only now", "clear_at": "next_user_message"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"},
                {"role": "system", "content": "Still now", "clear_at": "next_user_message"},
            ]
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": "Env: linux"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"},
                {"role": "system", "content": "Still now"},
            ],
        },
    ),
    (
        "plain text",
        base(messages=[{"role": "user", "content": "Hi"}]),
        {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]},
    ),
    (
        "system as a string, temperature, stop sequences, metadata",
        base(
            system="Be brief.",
            temperature=0.5,
            stop_sequences=["END"],
            metadata={"user_id": "u-1"},
            messages=[{"role": "user", "content": "Hi"}],
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "system": "Be brief.",
            "temperature": 0.5,
            "stop": ["END"],
            "messages": [{"role": "user", "content": "Hi"}],
        },
    ),
    (
        "system as blocks (cache_control is a hint), text blocks joined",
        base(
            system=[
                {"type": "text", "text": "One."},
                {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}},
            ],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
                }
            ],
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "system": "One.\n\nTwo.",
            "messages": [{"role": "user", "content": "AB"}],
        },
    ),
    (
        "images: base64 as a data URL, url as the URL",
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                    ],
                }
            ]
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    ],
                }
            ],
        },
    ),
    (
        "tools, tool_choice, a tool_use turn and its tool_result (results first)",
        base(
            tools=[WEATHER],
            tool_choice={"type": "any"},
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Looking."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_1",
                            "content": [{"type": "text", "text": "Sunny"}],
                        },
                        {"type": "text", "text": "And so?"},
                    ],
                },
            ],
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "tools": [WEATHER_FN],
            "tool_choice": "required",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": "Looking.",
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
                {"role": "user", "content": "And so?"},
            ],
        },
    ),
    (
        "a failed tool result says so; tool_choice naming a tool",
        base(
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                }
            ],
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [{"role": "tool", "tool_call_id": "t", "content": "Error: boom"}],
        },
    ),
    (
        "Anthropic-only fields (as Claude Code sends them) and thinking blocks are carried",
        base(
            thinking={"type": "adaptive", "display": "omitted"},
            context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            output_config={"effort": "high"},
            messages=[
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
        ),
        {
            "model": "claude-test",
            "max_tokens": 64,
            "anthropic": {
                "thinking": {"type": "adaptive", "display": "omitted"},
                "context_management": {
                    "edits": [{"type": "clear_thinking_20251015", "keep": "all"}]
                },
                "output_config": {"effort": "high"},
            },
            "messages": [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": "Hello",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"}
                    ],
                },
                {"role": "user", "content": "Again"},
            ],
        },
    ),
]


@pytest.mark.parametrize(("case", "body", "params"), PARSED, ids=[c[0] for c in PARSED])
def test_a_messages_request_becomes_the_one_request(
    case: str, body: dict[str, Any], params: dict[str, Any]
) -> None:
    assert dialect.parse_request(body).to_params() == params


REFUSED = [
    ("not an object", [], None),
    ("no model", {"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ("no max_tokens", {"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    (
        "max_tokens is a bool",
        base(max_tokens=True, messages=[{"role": "user", "content": "x"}]),
        "max_tokens",
    ),
    ("empty messages", base(messages=[]), "messages"),
    ("a tool role in messages", base(messages=[{"role": "tool", "content": "x"}]), "messages"),
    (
        "a beta field on a system message",
        base(messages=[{"role": "system", "content": "x", "output_config": {}}]),
        None,
    ),
    ("an unknown field", base(top_k=3, messages=[{"role": "user", "content": "x"}]), "top_k"),
    (
        "a server tool",
        base(
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "x"}],
        ),
        "tools",
    ),
    (
        "a document block",
        base(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
        None,
    ),
    (
        "an image in a tool result",
        base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "image", "source": {}}],
                        }
                    ],
                }
            ]
        ),
        None,
    ),
    (
        "metadata beyond user_id",
        base(metadata={"x": 1}, messages=[{"role": "user", "content": "x"}]),
        "metadata",
    ),
    (
        "a bad tool_choice",
        base(tool_choice={"type": "sometimes"}, messages=[{"role": "user", "content": "x"}]),
        "tool_choice",
    ),
    (
        "stop_sequences not strings",
        base(stop_sequences=[1], messages=[{"role": "user", "content": "x"}]),
        "stop_sequences",
    ),
]


@pytest.mark.parametrize(("case", "body", "param"), REFUSED, ids=[c[0] for c in REFUSED])
def test_what_cannot_be_carried_is_a_clear_400(case: str, body: Any, param: str | None) -> None:
    with pytest.raises(DialectError) as refused:
        dialect.parse_request(body)
    assert refused.value.kind == "invalid_request"
    assert refused.value.param == param
    status, kind = dialect.error_of(refused.value.kind)
    assert (status, kind) == (400, "invalid_request_error")
    ErrorResponse.model_validate(dialect.error_body(kind, refused.value.message))


def test_count_tokens_takes_no_max_tokens_and_estimates_by_the_guardians_bound() -> None:
    body = {"model": "m", "system": "S", "messages": [{"role": "user", "content": "Hello"}]}
    completion = dialect.parse_request(body, counting=True)
    measured = {"messages": [{"role": "user", "content": "Hello"}], "system": "S"}
    size = len(json.dumps(measured, separators=(",", ":")).encode())
    assert completion.estimated_tokens() == size + 16
    with pytest.raises(DialectError):
        dialect.parse_request({**body, "max_tokens": 5}, counting=True)


def test_anthropic_beta_values_are_split_and_deduplicated() -> None:
    assert dialect.betas_of(["a-1,b-2", " a-1 ", ""]) == ("a-1", "b-2")
    completion = dialect.parse_request(
        base(messages=[{"role": "user", "content": "x"}]), betas=("a-1",)
    )
    assert completion.to_params()["betas"] == ["a-1"]


RESULTS = [
    ("text", {"text": "Hello", "finish_reason": "stop"}, "end_turn"),
    ("cut", {"text": "Hel", "finish_reason": "length"}, "max_tokens"),
    (
        "tool call",
        {
            "text": "",
            "finish_reason": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                }
            ],
        },
        "tool_use",
    ),
    (
        "thinking then text",
        {
            "text": "Hi",
            "finish_reason": "stop",
            "thinking": [{"type": "thinking", "thinking": "hmm", "signature": "s"}],
        },
        "end_turn",
    ),
]


@pytest.mark.parametrize(("case", "result", "reason"), RESULTS, ids=[c[0] for c in RESULTS])
def test_an_answer_renders_as_the_sdks_message(
    case: str, result: dict[str, Any], reason: str
) -> None:
    result = {**result, "model": "m", "usage": {"input_tokens": 3, "output_tokens": 4}}
    rendered = dialect.render_message(Answer.of(result), "msg_1")
    message = Message.model_validate(rendered)
    assert message.stop_reason == reason
    assert message.usage.input_tokens == 3 and message.usage.output_tokens == 4
    kinds = [block.type for block in message.content]
    if case == "tool call":
        assert kinds == ["tool_use"] and message.content[0].input == {"a": 1}  # type: ignore[union-attr]
    elif case == "thinking then text":
        assert kinds == ["thinking", "text"]
    else:
        assert kinds == ["text"]


def rendered_stream(
    chunks: list[dict[str, Any]], result: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    stream = dialect.MessageStream("msg_1", "claude-test")
    events = stream.start()
    for chunk in chunks:
        for event in events_of(chunk):
            events += stream.feed(event)
    return events + stream.finish(Answer.of(result))


STREAMS = [
    (
        "text",
        [{"text": "Hel"}, {"text": "lo"}],
        {"finish_reason": "stop"},
        [{"type": "text", "text": "Hello"}],
    ),
    (
        "text then a tool call in fragments (Anthropic and OpenAI providers)",
        [
            {"text": "Let me look."},
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            },
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]},
        ],
        {"finish_reason": "tool_calls"},
        [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "c1", "name": "f", "input": {"city": "Paris"}},
        ],
    ),
    (
        "two whole tool calls in one chunk (Gemini)",
        [
            {
                "tool_calls": [
                    {"index": 0, "id": "call_0", "function": {"name": "a", "arguments": "{}"}},
                    {
                        "index": 1,
                        "id": "call_1",
                        "function": {"name": "b", "arguments": '{"x": 2}'},
                    },
                ]
            }
        ],
        {"finish_reason": "tool_calls"},
        [
            {"type": "tool_use", "id": "call_0", "name": "a", "input": {}},
            {"type": "tool_use", "id": "call_1", "name": "b", "input": {"x": 2}},
        ],
    ),
    (
        "a redacted thinking block, then text",
        [{"thinking": {"redacted": "xyz"}}, {"text": "Hi"}],
        {"finish_reason": "stop"},
        [{"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "Hi"}],
    ),
    (
        "thinking with its signature, then text",
        [{"thinking": {"thinking": "hmm"}}, {"thinking": {"signature": "sig"}}, {"text": "Hi"}],
        {"finish_reason": "stop"},
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hi"},
        ],
    ),
]


@pytest.mark.parametrize(
    ("case", "chunks", "result", "content"), STREAMS, ids=[c[0] for c in STREAMS]
)
def test_a_stream_renders_as_the_sdks_event_sequence(
    case: str, chunks: list[dict[str, Any]], result: dict[str, Any], content: list[dict[str, Any]]
) -> None:
    result = {**result, "model": "m", "usage": {"input_tokens": 5, "output_tokens": 6}}
    events = rendered_stream(chunks, result)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == [
        "message_delta",
        "message_stop",
    ]
    assert names.count("content_block_start") == names.count("content_block_stop") == len(content)
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    snapshot: Any = None
    buffers: dict[int, bytes] = {}
    for name, data in events:
        if name == "ping":
            continue
        event = adapter.validate_python(data)
        assert event.type == name
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    final = Message.model_validate(snapshot.model_dump())
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {k: v for k, v in block.items()} for block in content
    ]
    assert final.usage.input_tokens == 5 and final.usage.output_tokens == 6
    # the wire form: one `event:` and one `data:` line per event
    wire = b"".join(dialect.encode(events)).decode()
    assert wire.count("event: ") == len(events)


def test_a_failing_stream_ends_with_an_error_event_in_the_sdks_shape() -> None:
    stream = dialect.MessageStream("msg_1", "m")
    ((name, data),) = stream.error("overloaded_error", "provider down")
    assert name == "error"
    ErrorResponse.model_validate(data)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("invalid_params", 400, "invalid_request_error"),
        ("unauthenticated", 401, "authentication_error"),
        ("forbidden", 403, "permission_error"),
        ("not_found", 404, "not_found_error"),
        ("rate_limited", 429, "rate_limit_error"),
        ("budget_exceeded", 429, "billing_error"),
        ("provider_error", 502, "api_error"),
        ("unavailable", 503, "overloaded_error"),
        ("timeout", 504, "timeout_error"),
        ("internal", 500, "api_error"),
    ],
)
def test_every_rpc_error_has_anthropics_type_and_a_status(
    code: str, status: int, kind: str
) -> None:
    assert dialect.error_of(code) == (status, kind)
    ErrorResponse.model_validate(dialect.error_body(kind, "x"))


def test_the_one_request_is_what_the_sealed_call_takes() -> None:
    """Every field a dialect fills is an `LlmParams` field (the guardian refuses others)."""
    from protocol.contract import LlmParams

    full = Completion(
        model="m",
        messages=[],
        system="s",
        tools=[],
        tool_choice="auto",
        max_tokens=1,
        temperature=0.1,
        stop=["x"],
        betas=("b",),
        anthropic={"thinking": {"type": "enabled", "budget_tokens": 1}},
    )
    assert set(full.to_params()) <= set(LlmParams.__struct_fields__)
