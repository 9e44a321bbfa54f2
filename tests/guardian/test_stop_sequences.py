"""A matched stop sequence (issue 27): Anthropic says which of the request's stop sequences
ended the text (`stop_reason: "stop_sequence"`, `stop_sequence`), in a reply and in a stream's
`message_delta`; the adapter keeps it, and Anthropic's dialect renders it, checked against the
official SDK's types. OpenAI-format and Gemini providers say only that the text stopped
(`finish_reason: "stop"`, `finishReason: "STOP"`), so the dialect says "end_turn"."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent

from guardian.providers.adapters import AnthropicAdapter, GeminiAdapter, OpenAIAdapter
from guardian.providers.types import StreamState
from protocol.dialects import anthropic as dialect
from protocol.dialects.core import Answer, TextDelta
from protocol.pyfun import ProviderConfig


def provider(api: str) -> ProviderConfig:
    return ProviderConfig(
        name=api, kind="llm", api=api, base_url="https://x.example/v1", env_keys=("K",)
    )


def anthropic_reply(stop_reason: str, stop_sequence: Any) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "one two "}],
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }


@pytest.mark.parametrize(
    ("stop_reason", "sequence", "kept"),
    [
        ("stop_sequence", "THREE", "THREE"),
        ("end_turn", None, None),
        ("stop_sequence", None, None),  # malformed: no sequence said
        ("end_turn", "THREE", None),  # a sequence without the reason is not a match
        ("stop_sequence", 3, None),
    ],
)
def test_anthropic_says_which_stop_sequence_matched(
    stop_reason: str, sequence: Any, kept: str | None
) -> None:
    adapter = AnthropicAdapter(provider("anthropic"))
    result = adapter.parse_chat(anthropic_reply(stop_reason, sequence))
    assert result.stop_sequence == kept and result.finish_reason == "stop"
    delta = adapter.parse_event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": sequence},
            "usage": {"output_tokens": 2},
        },
        StreamState(),
    )
    assert delta is not None and delta.stop_sequence == (kept or "")


def test_openai_and_gemini_say_only_that_the_text_stopped() -> None:
    openai = OpenAIAdapter(provider("openai")).parse_chat(
        {"model": "m", "choices": [{"message": {"content": "one"}, "finish_reason": "stop"}]}
    )
    gemini = GeminiAdapter(provider("gemini")).parse_chat(
        {"candidates": [{"content": {"parts": [{"text": "one"}]}, "finishReason": "STOP"}]}
    )
    for result in (openai, gemini):
        assert result.finish_reason == "stop" and result.stop_sequence is None


GUARDIAN = {"text": "one two ", "model": "claude-x", "finish_reason": "stop"}


@pytest.mark.parametrize(
    ("result", "stop_reason", "stop_sequence"),
    [
        ({**GUARDIAN, "stop_sequence": "THREE"}, "stop_sequence", "THREE"),
        (GUARDIAN, "end_turn", None),
        ({**GUARDIAN, "finish_reason": "length", "stop_sequence": "X"}, "max_tokens", None),
    ],
)
def test_the_dialect_reports_the_match_as_the_sdks_message_and_stream_say_it(
    result: dict[str, Any], stop_reason: str, stop_sequence: str | None
) -> None:
    answer = Answer.of(result)
    message = Message.model_validate(dialect.render_message(answer, "msg_1"))
    assert message.stop_reason == stop_reason and message.stop_sequence == stop_sequence
    stream = dialect.MessageStream("msg_1", "claude-x")
    events = [*stream.start(), *stream.feed(TextDelta("one two ")), *stream.finish(answer)]
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    snapshot: Any = None
    for name, data in events:
        if name != "ping":
            event = adapter.validate_python(data)
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs={})
    final = Message.model_validate(snapshot.model_dump())
    assert final.stop_reason == stop_reason and final.stop_sequence == stop_sequence
