"""The OpenAI Responses dialect: parsed into the one request, rendered from the one answer
and stream, each rendering checked against the official `openai` SDK's own types and its
stream accumulator."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from protocol.dialects import responses as dialect
from protocol.dialects.core import Answer, DialectError, events_of

FN = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def base(**fields: Any) -> dict[str, Any]:
    return {"model": "m", **fields}


PARSED = [
    (
        "input as text",
        base(input="Hi"),
        {"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
    ),
    (
        "instructions, developer and system messages, output limits, json schema",
        base(
            instructions="Be brief.",
            max_output_tokens=50,
            temperature=0.2,
            text={
                "format": {
                    "type": "json_schema",
                    "name": "a",
                    "schema": {"type": "object"},
                    "strict": True,
                }
            },
            input=[
                {
                    "type": "message",
                    "role": "developer",
                    "content": [{"type": "input_text", "text": "Dev."}],
                },
                {"role": "user", "content": "Hi"},
            ],
        ),
        {
            "model": "m",
            "system": "Be brief.",
            "max_tokens": 50,
            "temperature": 0.2,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True},
            },
            "messages": [{"role": "system", "content": "Dev."}, {"role": "user", "content": "Hi"}],
        },
    ),
    (
        "function tools, parallel function calls and their outputs; reasoning items left out",
        base(
            tools=[FN],
            tool_choice={"type": "function", "name": "get_weather"},
            store=False,
            include=["reasoning.encrypted_content"],
            reasoning={"summary": "auto"},
            parallel_tool_calls=True,
            prompt_cache_key="k",
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city": "Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "get_weather",
                    "arguments": '{"city": "Rome"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "Sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "Rain"}],
                },
            ],
        ),
        {
            "model": "m",
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": FN["parameters"],
                        "strict": False,
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "Rain"},
            ],
        },
    ),
    (
        "an image part",
        base(
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    ],
                }
            ]
        ),
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(("case", "body", "params"), PARSED, ids=[c[0] for c in PARSED])
def test_a_responses_request_becomes_the_one_request(
    case: str, body: dict[str, Any], params: dict[str, Any]
) -> None:
    assert dialect.parse_request(body).to_params() == params


REFUSED = [
    ("no model", {"input": "x"}, "model"),
    ("stored responses", base(input="x", store=True), "store"),
    ("a previous response", base(input="x", previous_response_id="resp_1"), "previous_response_id"),
    ("a built-in tool", base(input="x", tools=[{"type": "web_search"}]), "tools"),
    ("an item reference", base(input=[{"type": "item_reference", "id": "x"}]), "input"),
    (
        "a file input",
        base(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]),
        "input",
    ),
    ("an unknown field", base(input="x", top_logprobs=2), "top_logprobs"),
    ("another include", base(input="x", include=["file_search_call.results"]), "include"),
    ("empty input", base(input=[]), "input"),
]


@pytest.mark.parametrize(("case", "body", "param"), REFUSED, ids=[c[0] for c in REFUSED])
def test_what_cannot_be_carried_is_a_clear_400(case: str, body: Any, param: str) -> None:
    with pytest.raises(DialectError) as refused:
        dialect.parse_request(body)
    assert refused.value.param == param


SHELL_BODY = {"model": "m", "tools": [FN], "tool_choice": "auto", "instructions": "Be brief."}
RESULTS = [
    ("text", {"text": "Hello", "finish_reason": "stop"}, "completed", ["message"]),
    ("cut", {"text": "Hel", "finish_reason": "length"}, "incomplete", ["message"]),
    (
        "two calls",
        {
            "finish_reason": "tool_calls",
            "tool_calls": [
                {"id": "c1", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "function": {"name": "g", "arguments": '{"a": 1}'}},
            ],
        },
        "completed",
        ["function_call", "function_call"],
    ),
]


@pytest.mark.parametrize(
    ("case", "result", "status", "kinds"), RESULTS, ids=[c[0] for c in RESULTS]
)
def test_an_answer_renders_as_the_sdks_response(
    case: str, result: dict[str, Any], status: str, kinds: list[str]
) -> None:
    result = {**result, "model": "m", "usage": {"input_tokens": 3, "output_tokens": 4}}
    shell = dialect.Shell("resp_1", 1700000000, SHELL_BODY)
    response = Response.model_validate(dialect.render_response(Answer.of(result), shell))
    assert response.status == status and [item.type for item in response.output] == kinds
    assert response.usage is not None and response.usage.total_tokens == 7
    if case == "text":
        assert response.output_text == "Hello"
    if case == "two calls":
        assert [item.call_id for item in response.output] == ["c1", "c2"]  # type: ignore[union-attr]


STREAMS = [
    ("text", [{"text": "Hel"}, {"text": "lo"}], {"finish_reason": "stop", "text": ""}, "Hello", []),
    (
        "text then a call in fragments",
        [
            {"text": "Looking."},
            {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]},
        ],
        {"finish_reason": "tool_calls"},
        "Looking.",
        [("c1", "f", '{"city": "Paris"}')],
    ),
    (
        "two whole calls (Gemini)",
        [
            {
                "tool_calls": [
                    {"index": 0, "id": "call_0", "function": {"name": "a", "arguments": "{}"}},
                    {"index": 1, "id": "call_1", "function": {"name": "b", "arguments": "{}"}},
                ]
            }
        ],
        {"finish_reason": "tool_calls"},
        "",
        [("call_0", "a", "{}"), ("call_1", "b", "{}")],
    ),
    ("nothing at all", [], {"finish_reason": "stop"}, "", []),
]


@pytest.mark.parametrize(
    ("case", "chunks", "result", "text", "calls"), STREAMS, ids=[c[0] for c in STREAMS]
)
def test_a_stream_renders_as_the_sdks_event_sequence(
    case: str,
    chunks: list[dict[str, Any]],
    result: dict[str, Any],
    text: str,
    calls: list[tuple[str, str, str]],
) -> None:
    result = {**result, "model": "m", "usage": {"input_tokens": 5, "output_tokens": 6}}
    stream = dialect.ResponseStream(dialect.Shell("resp_1", 1700000000, SHELL_BODY), "m")
    events = stream.start()
    for chunk in chunks:
        for event in events_of(chunk):
            events += stream.feed(event)
    events += stream.finish(Answer.of(result))
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    numbers = []
    for name, data in events:
        event = adapter.validate_python(data)
        assert event.type == name
        numbers.append(event.sequence_number)
        state.handle_event(event)
    assert numbers == list(range(len(events)))
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    final = Response.model_validate(events[-1][1]["response"])
    assert final.output_text == text
    got = [(i.call_id, i.name, i.arguments) for i in final.output if i.type == "function_call"]
    assert got == calls
    assert final.usage is not None and final.usage.input_tokens == 5


def test_a_failing_stream_ends_with_response_failed_in_the_sdks_shape() -> None:
    stream = dialect.ResponseStream(dialect.Shell("resp_1", 1, SHELL_BODY), "m")
    stream.start()
    ((name, data),) = stream.error("provider_error", "every provider failed")
    assert name == "response.failed"
    event: Any = pydantic.TypeAdapter(ResponseStreamEvent).validate_python(data)
    assert event.response.status == "failed" and event.response.error.code == "server_error"
