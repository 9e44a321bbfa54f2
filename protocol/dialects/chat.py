"""OpenAI's Chat Completions (`POST /v1/chat/completions`) as a client dialect.

`check_request` reads a body as the checked `ChatRequest` (`protocol.contract_http`: the
fields it declares, each checked once; the commonest mistakes in OpenAI's words, naming the
field), `parse_request` turns it into the one `Completion`; `render_completion` and
`ChunkStream` render the guardian's answer as a `chat.completion` and as
`chat.completion.chunk` server-sent events (a role chunk first, one chunk per guardian chunk
with text or tool calls, a final chunk with the finish reason, the usage chunk when
`stream_options.include_usage` asks for it, then `[DONE]`; an error event if the stream fails
after it started).

The guardian's request and answer are already in OpenAI's chat shape, so this dialect is the
thinnest: tool calls and their stream deltas go out as the guardian sent them (`raw`), and
every field `ChatFields` declares reaches the guardian by name, a new one included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from protocol.contract_http import ChatRequest, StreamOptions, decode_body
from protocol.dialects.core import (
    Answer,
    Completion,
    DialectError,
    Event,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from protocol.errors import InvalidParams

#: Fields accepted and honoured here (or meaningless for a gateway); any other is a 400.
ACCEPTED = frozenset(ChatRequest.__struct_fields__)
#: The `Completion` fields a chat request fills; the other `ChatFields` go in `extra`.
_SLOTS = frozenset(
    {"model", "messages", "tools", "tool_choice", "response_format", "max_tokens", "temperature"}
)


def check_request(body: dict[str, Any]) -> ChatRequest:
    """The body as `ChatRequest`, or `DialectError` naming the field (OpenAI's 400)."""
    unknown = sorted(set(body) - ACCEPTED)
    if unknown:
        raise DialectError(f"unsupported parameter(s): {', '.join(unknown)}", param=unknown[0])
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise DialectError("'model' is required", param="model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise DialectError("'messages' must be a non-empty list", param="messages")
    if body.get("n") not in (None, 1):
        raise DialectError("only n = 1 is supported", param="n")
    try:
        return decode_body(ChatRequest, body)
    except InvalidParams as exc:
        raise DialectError(exc.message) from None


def parse_request(chat: ChatRequest) -> Completion:
    """The checked request as the one `Completion`: what `llm.complete` takes of it
    (`ChatRequest.llm_fields`), every field by name."""
    fields = chat.llm_fields()
    return Completion(
        model=chat.model,
        messages=list(fields["messages"]),
        tools=fields.get("tools"),
        tool_choice=fields.get("tool_choice"),
        response_format=fields.get("response_format"),
        max_tokens=fields.get("max_tokens"),
        temperature=fields.get("temperature"),  # as sent (an integer stays one)
        stream=bool(chat.stream),
        extra={name: value for name, value in fields.items() if name not in _SLOTS} or None,
    )


def include_usage(chat: ChatRequest) -> bool:
    """Whether a stream ends with OpenAI's usage chunk (`stream_options.include_usage`)."""
    options = chat.stream_options
    return bool(options.include_usage) if isinstance(options, StreamOptions) else False


# rendering -----------------------------------------------------------------------------------
def _call(call: ToolCall) -> dict[str, Any]:
    raw = call.raw or {"id": call.id, "function": {"name": call.name, "arguments": call.arguments}}
    return {"id": raw.get("id", ""), "type": "function", "function": raw.get("function", {})}


def message_of(answer: Answer) -> dict[str, Any]:
    """The assistant message: its text (None beside tool calls, as OpenAI says it), its calls."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_calls:
        message["tool_calls"] = [_call(call) for call in answer.tool_calls]
    elif message["content"] is None:
        message["content"] = ""
    return message


def usage_of(answer: Answer | None) -> dict[str, int]:
    prompt = answer.input_tokens if answer is not None else 0
    completion = answer.output_tokens if answer is not None else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def render_completion(answer: Answer, completion_id: str, created: int) -> dict[str, Any]:
    """The answer as a `chat.completion` (the route adds its `sealgate` field)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": message_of(answer),
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage_of(answer),
    }


def _data(payload: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


class ChunkStream:
    """Renders one stream as `chat.completion.chunk` events: `start()`, then `feed()` with
    each guardian chunk's events, then `finish()` or `error()`; each returns the bytes to
    send."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model

    def _chunk(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        extra: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> bytes:
        payload: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model if model is None else model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if extra is not None:
            payload["sealgate"] = extra
        return _data(payload)

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, events: list[Event]) -> bytes:
        """One guardian chunk's events as one chunk (nothing if it carried neither text nor
        tool calls: thinking has no place in this dialect)."""
        delta: dict[str, Any] = {}
        text = "".join(event.text for event in events if isinstance(event, TextDelta))
        if text:
            delta["content"] = text
        calls = [
            event.raw or _delta_call(event) for event in events if isinstance(event, ToolCallDelta)
        ]
        if calls:
            delta["tool_calls"] = calls
        return self._chunk(delta) if delta else b""

    def finish(
        self, answer: Answer | None, extra: dict[str, Any] | None, with_usage: bool
    ) -> list[bytes]:
        """The finish chunk (with the `sealgate` map), the usage chunk if asked, `[DONE]`."""
        model = answer.model if answer is not None else self.model
        finish = answer.finish_reason if answer is not None else "stop"
        out = [self._chunk({}, finish, extra, model)]
        if with_usage:
            payload = {
                "id": self.completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model,
                "choices": [],
                "usage": usage_of(answer),
            }
            out.append(_data(payload))
        out.append(b"data: [DONE]\n\n")
        return out

    def error(self, message: str, kind: str, code: str) -> bytes:
        """A failure after the stream started: OpenAI's error object as an event."""
        return _data({"error": {"message": message, "type": kind, "code": code, "param": None}})


def _delta_call(event: ToolCallDelta) -> dict[str, Any]:
    call: dict[str, Any] = {"index": event.index}
    if event.id:
        call["id"] = event.id
        call["type"] = "function"
    function = {
        k: v for k, v in (("name", event.name), ("arguments", event.arguments)) if v or k != "name"
    }
    call["function"] = function
    return call
