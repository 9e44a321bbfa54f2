"""The official `openai` SDK's Responses client against the real stack (`POST
/v1/responses`, issue 27): every provider wire format behind it, plain and streamed,
function calls, errors, and no stored responses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.world import World
from tests.fakes.base import Behaviour

MODELS = {
    "anthropic": "claude-test",
    "gemini": "gemini-test",
    "openrouter": "meta/llama:free",
    "huggingface": "hf/model",
}
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}


def sdk(w: World) -> OpenAI:
    return OpenAI(base_url=f"{w.stack.url}/v1", api_key="unused-in-open-mode", max_retries=0)


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_a_response_and_a_stream_with_each_provider(w: World, provider: str) -> None:
    client = sdk(w)
    expected = getattr(w, provider).reply_text
    reply = client.responses.create(
        model=MODELS[provider], instructions="Be brief.", input="Hello", store=False
    )
    assert reply.output_text == expected and reply.status == "completed"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    with client.responses.stream(model=MODELS[provider], input="Hello", store=False) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == expected and final.output_text == expected
    assert len(deltas) > 1  # streamed as it came, not in one piece


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("streamed", [False, True])
def test_a_function_call_round_trip_with_each_wire_format(
    w: World, provider: str, streamed: bool
) -> None:
    client = sdk(w)
    conversation: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    options: Any = {"model": MODELS[provider], "tools": [WEATHER], "store": False}
    if streamed:
        with client.responses.stream(input=conversation, **options) as stream:
            first = stream.get_final_response()
    else:
        first = client.responses.create(input=conversation, **options)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    conversation += [
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ]
    second = client.responses.create(input=conversation, **options)
    assert second.output_text == getattr(w, provider).reply_text
    assert "Sunny" in json.dumps(getattr(w, provider).requests[-1].body)


def test_errors_keep_openai_shape_and_nothing_is_stored(w: World) -> None:
    client = sdk(w)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="no-such-model", input="hi")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="stores no responses") as stored:
        client.responses.create(model="claude-test", input="hi", store=True)
    assert stored.value.body["param"] == "store"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="claude-test", input="hi", previous_response_id="resp_x")
    with pytest.raises(openai.BadRequestError, match="web_search"):
        client.responses.create(model="claude-test", input="hi", tools=[{"type": "web_search"}])
    for fake in (w.anthropic, w.gemini, w.openrouter, w.huggingface):
        fake.behave(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError) as failed:
        client.responses.create(model="claude-test", input="hi")
    assert failed.value.status_code == 502


def test_a_failure_mid_stream_ends_with_response_failed(w: World) -> None:
    w.anthropic.behave(Behaviour(stream_abort_after=5))
    reply = httpx.post(
        f"{w.stack.url}/v1/responses",
        timeout=30,
        json={"model": "claude-test", "stream": True, "input": "hi", "store": False},
    )
    names = [line[7:] for line in reply.text.splitlines() if line.startswith("event: ")]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in names  # text reached the client first ...
    assert names[-1] == "response.failed" and "response.completed" not in names  # ... then this
    assert w.gemini.requests == []
