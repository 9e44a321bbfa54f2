"""The official `openai` SDK against the real stack, and the JSON API."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.world import World
from tests.fakes.base import Behaviour

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}

MODELS = {
    "anthropic": "claude-test",
    "gemini": "gemini-test",
    "openrouter": "meta/llama:free",
    "huggingface": "hf/model",
}


def sdk(w: World) -> OpenAI:
    return OpenAI(base_url=f"{w.stack.url}/v1", api_key="unused-in-open-mode", max_retries=0)


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_completion_and_streaming_with_each_provider(w: World, provider: str) -> None:
    client = sdk(w)
    completion = client.chat.completions.create(
        model=MODELS[provider],
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    )
    assert completion.choices[0].message.content == getattr(w, provider).reply_text
    assert completion.usage is not None and completion.usage.total_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model=MODELS[provider],
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == getattr(w, provider).reply_text
    assert len(chunks) > 4 and chunks[-1].usage is not None and chunks[-1].choices == []


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_round_trip_with_each_wire_format(
    w: World, provider: str, stream: bool
) -> None:
    client = sdk(w)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=MODELS[provider], messages=messages, tools=[WEATHER_TOOL], stream=True
            )
        )
        calls: dict[int, dict[str, str]] = {}
        for chunk in chunks:
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                call["name"] = (
                    delta.function.name if delta.function and delta.function.name else call["name"]
                )
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
        (call,) = calls.values()
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        name, arguments, call_id = call["name"], call["arguments"], call["id"]
    else:
        first = client.chat.completions.create(
            model=MODELS[provider], messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"
        )
        assert first.choices[0].finish_reason == "tool_calls"
        (tool_call,) = first.choices[0].message.tool_calls or []
        name, arguments, call_id = (
            tool_call.function.name,
            tool_call.function.arguments,
            tool_call.id,
        )
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18 degrees, sunny"},
    ]
    final = client.chat.completions.create(
        model=MODELS[provider], messages=messages, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].message.content == getattr(w, provider).reply_text
    sent = getattr(w, provider).requests[-1].body
    if provider == "anthropic":
        assert sent["tools"][0]["input_schema"]["required"] == ["city"]
        assert sent["messages"][-1]["content"][0]["type"] == "tool_result"
    elif provider == "gemini":
        assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
        assert "functionResponse" in sent["contents"][-1]["parts"][0]
    else:
        assert sent["tools"] == [WEATHER_TOOL] and sent["messages"][-1]["role"] == "tool"


def test_response_format_passes_through_or_is_refused_by_name(w: World) -> None:
    client = sdk(w)
    client.chat.completions.create(
        model="meta/llama:free",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "json please"}],
    )
    assert w.openrouter.requests[-1].body["response_format"] == {"type": "json_object"}
    client.chat.completions.create(
        model="gemini-test",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "json please"}],
    )
    assert w.gemini.requests[-1].body["generationConfig"]["responseMimeType"] == "application/json"
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.chat.completions.create(
            model="claude-test",
            response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "json please"}],
        )


def test_errors_keep_openai_shape_and_status(w: World) -> None:
    client = sdk(w)
    hello = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=hello)
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        client.chat.completions.create(model="claude-test", messages=hello, logit_bias={"1": 2})
    for fake in (w.anthropic, w.gemini, w.openrouter, w.huggingface):
        fake.behave(Behaviour(status=500))
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="claude-test", messages=hello)
    assert failed.value.status_code == 502
    w.local.behave(Behaviour(hang_s=3))  # past the local provider's 1 s timeout
    with pytest.raises(openai.APIStatusError) as slow:
        client.chat.completions.create(model="llama-local", messages=hello)
    assert slow.value.status_code == 504
    client.chat.completions.create(model="rationed", messages=hello)
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="rationed", messages=hello)
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    too_big = httpx.post(
        f"{w.stack.url}/v1/chat/completions",
        content=b"{" * (5 * 1024 * 1024),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert too_big.status_code == 413


def test_a_failure_mid_stream_ends_with_an_error_event(w: World) -> None:
    w.anthropic.behave(Behaviour(stream_abort_after=5))
    reply = httpx.post(
        f"{w.stack.url}/v1/chat/completions",
        timeout=30,
        json={
            "model": "claude-test",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    events = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert '"content"' in events[1]  # text reached the client first ...
    last = json.loads(events[-1])
    assert last["error"]["code"] == "provider_error"  # ... then an explicit error, no [DONE]
    assert w.gemini.requests == []


def test_model_list(w: World) -> None:
    ids = {m.id for m in sdk(w).models.list()}
    assert {"claude-test", "gemini-test", "meta/llama:free", "hf/model", "llama-local"} <= ids


def test_json_api(w: World) -> None:
    def api(payload: Any) -> httpx.Response:
        return httpx.post(f"{w.stack.url}/api", json=payload, timeout=30)

    tools = api({"tool": "list_active_tools", "params": {}}).json()["result"]
    assert "web_search" in tools["tools"] and "brave" in tools["search_providers"]
    assert {"id": "claude-test", "provider": "anthropic", "active": True} in tools["models"]
    done = api({"tool": "summarize", "params": {"prompt": "A long text"}})
    assert done.status_code == 200 and done.json()["meta"]["provider"] == "anthropic"
    assert done.json()["result"] == done.json()["meta"]["text"] != ""
    found = api({"tool": "web_search", "params": {"query": "x", "max_results": 2}}).json()
    assert len(found["meta"]["results"]) == 2
    assert found["meta"]["results"][0]["url"] in found["result"]
    # a search's receipt, and an LLM call's, in `meta` (docs/AUDIT.md)
    said = json.loads(base64.urlsafe_b64decode(found["meta"]["receipt"].split(".")[0] + "=="))
    assert said["tool"] == "web_search" and said["id"] == found["meta"]["receipt_id"]
    assert done.json()["meta"]["receipt"].count(".") == 1
    assert api({"tool": "nope"}).status_code == 404
    unknown = api({"tool": "llm_complete", "params": {"prompt": "x", "colour": "red"}})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["message"]
    assert api({"tool": "llm_complete", "params": {}}).status_code == 400
    assert api([1, 2]).status_code == 400
    for fake in (w.anthropic, w.gemini, w.openrouter, w.huggingface):
        fake.behave(Behaviour(status=503))
    failed = api({"tool": "llm_complete", "params": {"prompt": "x"}})
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "provider_error"
    assert "Traceback" not in failed.text


@pytest.mark.parametrize(
    ("model", "fake"),
    [("openrouter/text-embedding-3-small", "openrouter"), ("gemini/text-embedding-004", "gemini")],
)
def test_embeddings_with_the_sdk(w: World, model: str, fake: str) -> None:
    result = sdk(w).embeddings.create(model=model, input=["hello", "world!"])  # base64 on the wire
    assert [d.embedding for d in result.data] == [
        [5.0, 0.5, -1.0, float(sum(map(ord, "hello")) % 7)],
        [6.0, 0.5, -1.0, float(sum(map(ord, "world!")) % 7)],
    ]
    answer = httpx.post(
        f"{w.stack.url}/v1/embeddings",
        json={"model": model, "input": "x", "encoding_format": "float"},
    )
    floats = answer.json()
    assert floats["data"][0]["embedding"][:3] == [1.0, 0.5, -1.0]
    # its receipt (docs/AUDIT.md): the embedding call's ledger row, signed
    receipt = answer.headers["sealgate-receipt"]
    body = json.loads(base64.urlsafe_b64decode(receipt.split(".")[0] + "=="))
    assert body["id"] == answer.headers["sealgate-receipt-id"] and body["tool"] == "embeddings"
    assert getattr(w, fake).requests[-1].headers.get("authorization") or getattr(w, fake).requests[
        -1
    ].headers.get("x-goog-api-key")
    with pytest.raises(openai.BadRequestError, match="no embeddings API"):
        sdk(w).embeddings.create(model="anthropic/any-model", input="x")


def test_a_client_leaving_a_stream_stops_the_provider_request(w: World) -> None:
    w.openrouter.behave(Behaviour(stream_hold=True))
    before = w.openrouter.disconnects
    with httpx.stream(
        "POST",
        f"{w.stack.url}/v1/chat/completions",
        timeout=30,
        json={
            "model": "meta/llama:free",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ) as reply:
        for line in reply.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # the first words arrived; now hang up
    deadline = time.monotonic() + 10
    while w.openrouter.disconnects == before:
        assert time.monotonic() < deadline, "the provider request outlived the client"
        time.sleep(0.05)


PNG_B64 = "iVBORw0KGgoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _image_message(url: str) -> Any:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def test_image_parts_reach_anthropic_and_gemini_in_their_own_format(w: World) -> None:
    data_url = f"data:image/png;base64,{PNG_B64}"
    client = sdk(w)
    client.chat.completions.create(model="claude-test", messages=_image_message(data_url))
    (sent,) = [r.body for r in w.anthropic.requests]
    assert sent["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
    }
    client.chat.completions.create(model="gemini-test", messages=_image_message(data_url))
    (sent,) = [r.body for r in w.gemini.requests]
    assert sent["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": PNG_B64}
    }


def test_an_image_url_gemini_cannot_fetch_is_a_clear_400(w: World) -> None:
    with pytest.raises(openai.BadRequestError, match="data URL"):
        sdk(w).chat.completions.create(
            model="gemini-test", messages=_image_message("https://images.example/cat.png")
        )
    assert not w.gemini.requests and not w.openrouter.requests  # nothing left, no fallback


def test_the_json_api_keeps_a_refusals_type_to_the_client(w: World) -> None:
    # The guardian's typed rate limit reaches `POST /api` as a code (not text parsed back),
    # so the answer says when to come back, as `/v1` does.
    call = {"tool": "llm_complete", "params": {"prompt": "hi", "model": "rationed"}}
    answers = [httpx.post(f"{w.stack.url}/api", json=call, timeout=30) for _ in range(2)]
    limited = answers[-1]
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
