"""Anthropic's Messages API (`POST /v1/messages`) as a client dialect.

`parse_request` turns a Messages request into the one `Completion`; `render_message` and
`MessageStream` render the guardian's answer as a `Message` and as Anthropic's event sequence
(`message_start`, `ping`, `content_block_start/delta/stop`, `message_delta` with usage,
`message_stop`, and `error` when a stream fails). `error_body` is Anthropic's error shape.

What cannot be carried to every provider is refused with a clear 400 naming the field, never
dropped silently: server tools, document blocks, images inside tool results, top_k/top_p.
`metadata.user_id` is accepted and not sent on: the hub's own identity of the caller is what
the guardian records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from protocol.dialects.core import (
    Answer,
    Completion,
    DialectError,
    Event,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)

#: Fields only Anthropic's API takes: carried as they are, sent only to an Anthropic provider
#: (another gets none of them, and the answer says so).
ANTHROPIC_ONLY = ("thinking", "context_management", "output_config")
#: Request fields read here; any other is a 400 naming it.
ACCEPTED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        *ANTHROPIC_ONLY,
    }
)
#: count_tokens takes the request without what only shapes the answer.
COUNT_ACCEPTED = frozenset({"model", "messages", "system", "tools", "tool_choice", *ANTHROPIC_ONLY})
#: The guardian's finish reasons (OpenAI's words) as Anthropic's stop reasons.
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
#: Anthropic's error type and status for each generic kind and RPC error code.
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "invalid_params": (400, "invalid_request_error"),
    "unsupported_media_type": (400, "invalid_request_error"),
    "request_timeout": (408, "invalid_request_error"),
    "unauthenticated": (401, "authentication_error"),
    "forbidden": (403, "permission_error"),
    "insufficient_scope": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "payload_too_large": (413, "request_too_large"),
    "rate_limited": (429, "rate_limit_error"),
    "budget_exceeded": (429, "billing_error"),
    "provider_error": (502, "api_error"),
    "unavailable": (503, "overloaded_error"),
    "timeout": (504, "timeout_error"),
    "internal": (500, "api_error"),
}
STATUS_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
_DATA_MEDIA = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def error_body(kind: str, message: str) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}`, `kind` being Anthropic's type."""
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_of(code: str, status: int | None = None) -> tuple[int, str]:
    """(status, Anthropic error type) for an RPC error code or generic kind."""
    if code in ERRORS:
        known_status, kind = ERRORS[code]
        return (status or known_status), kind
    status = status or 500
    return status, STATUS_TYPE.get(status, "invalid_request_error" if status < 500 else "api_error")


# parsing -------------------------------------------------------------------------------------
def parse_request(body: Any, *, betas: tuple[str, ...] = (), counting: bool = False) -> Completion:
    """A Messages request (or a count_tokens one) as the one `Completion`."""
    if not isinstance(body, dict):
        raise DialectError("the request body must be a JSON object")
    unknown = sorted(set(body) - (COUNT_ACCEPTED if counting else ACCEPTED))
    if unknown:
        raise DialectError(f"{unknown[0]}: this field is not supported", param=unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DialectError("model: a model name is required", param="model")
    max_tokens = body.get("max_tokens")
    if not counting and not (
        isinstance(max_tokens, int) and _is_int(max_tokens) and max_tokens > 0
    ):
        raise DialectError("max_tokens: a positive integer is required", param="max_tokens")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool)
    ):
        raise DialectError("temperature: must be a number", param="temperature")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise DialectError("stream: must be a boolean", param="stream")
    _check_metadata(body.get("metadata"))
    return Completion(
        model=model,
        messages=_messages(body.get("messages")),
        system=_system(body.get("system")),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=None if counting else max_tokens,
        temperature=float(temperature) if temperature is not None else None,
        stop=_stop(body.get("stop_sequences")),
        stream=stream and not counting,
        betas=betas,
        anthropic=_anthropic_only(body),
    )


def betas_of(header_values: list[str]) -> tuple[str, ...]:
    """The `anthropic-beta` values a client sent (comma-separated, possibly repeated)."""
    seen: dict[str, None] = {}
    for value in header_values:
        for item in value.split(","):
            if item.strip():
                seen[item.strip()[:128]] = None
    return tuple(seen)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
        raise DialectError("metadata: only user_id is accepted", param="metadata")
    if metadata.get("user_id") is not None and not isinstance(metadata["user_id"], str):
        raise DialectError("metadata.user_id: must be a string", param="metadata")


def _system(system: Any) -> str | None:
    """A string, or text blocks (their cache_control is Anthropic's caching hint; the texts
    are joined by blank lines)."""
    if system is None:
        return None
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for block in system:
            if not isinstance(block, dict) or block.get("type") != "text":
                raise DialectError("system: only text blocks are supported", param="system")
            texts.append(_text(block, "system"))
        return "\n\n".join(texts)
    raise DialectError("system: must be a string or a list of text blocks", param="system")


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise DialectError(f"{where}: a text block needs a string 'text'", param=where)
    return text


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise DialectError(f"{where}: content must be a string or a list of blocks")
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise DialectError(f"{where}: every content block must be an object with a type")
    return content


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise DialectError("messages: a non-empty list is required", param="messages")
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise DialectError(f"{where}: must be an object", param="messages")
        role = message.get("role")
        blocks = _blocks(message.get("content"), where)
        if role == "user":
            out.extend(_user(blocks, where))
        elif role == "assistant":
            out.append(_assistant(blocks, where))
        elif role == "system":
            if _shown(message, messages[index + 1 :], where):
                out.append({"role": "system", "content": _system(blocks)})
        else:
            raise DialectError(
                f"{where}.role: must be 'user', 'assistant' or 'system'", param="messages"
            )
    return out


def _shown(message: dict[str, Any], later: list[Any], where: str) -> bool:
    """Whether a system message in `messages` still reaches the model: one sent with
    `clear_at: "next_user_message"` stops once a later user message exists."""
    extra = sorted(set(message) - {"role", "content", "clear_at"})
    if extra:
        raise DialectError(f"{where}.{extra[0]}: not supported on a system message")
    clear_at = message.get("clear_at")
    if clear_at in (None, "never"):
        return True
    if clear_at != "next_user_message":
        raise DialectError(f"{where}.clear_at: must be 'next_user_message' or 'never'")
    return not any(isinstance(m, dict) and m.get("role") == "user" for m in later)


def _user(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """One user turn: its tool results as `tool` messages (first, as Anthropic requires them
    first), then one user message with its text and images, if any."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, where)})
        elif kind == "image":
            parts.append(_image(block, where))
        elif kind == "tool_result":
            results.append(_tool_result(block, where))
        else:
            raise DialectError(f"{where}: content block type {kind!r} is not supported")
    out = list(results)
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    elif not results:
        out.append({"role": "user", "content": ""})
    return out


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    """An image block as an OpenAI `image_url` part (a data URL, or the https URL)."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not _DATA_MEDIA.match(media) or not isinstance(data, str):
            raise DialectError(f"{where}: a base64 image needs media_type and data")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise DialectError(f"{where}: an image source must be base64 or url")


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise DialectError(f"{where}: a tool_result needs tool_use_id")
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else "?"
                raise DialectError(
                    f"{where}: tool_result content of type {kind!r} is not supported"
                )
            texts.append(_text(part, where))
        content = "".join(texts)
    elif not isinstance(content, str):
        raise DialectError(f"{where}: tool_result content must be a string or text blocks")
    if block.get("is_error"):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _assistant(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise DialectError(f"{where}: a tool_use block needs id and name")
            if not isinstance(arguments, dict):
                raise DialectError(f"{where}: a tool_use block's input must be an object")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise DialectError(f"{where}: content block type {kind!r} is not supported")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise DialectError("tools: must be a list", param="tools")
    out = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") not in ("custom", None):
            kind = tool.get("type") if isinstance(tool, dict) else "?"
            raise DialectError(
                f"tools.{index}: tool type {kind!r} is not supported (only client tools, with"
                " name, description and input_schema)",
                param="tools",
            )
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name or not isinstance(schema, dict):
            raise DialectError(f"tools.{index}: name and input_schema are required", param="tools")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("auto", "none"):
        return str(kind)
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise DialectError(
        "tool_choice: must be {'type': 'auto' | 'any' | 'none'} or {'type': 'tool', 'name'}",
        param="tool_choice",
    )


def _stop(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise DialectError("stop_sequences: must be a list of strings", param="stop_sequences")
    return stop or None


def _anthropic_only(body: dict[str, Any]) -> dict[str, Any] | None:
    """The Anthropic-only fields that were sent, each an object (Anthropic checks the rest)."""
    fields = {name: body[name] for name in ANTHROPIC_ONLY if body.get(name) is not None}
    for name, value in fields.items():
        if not isinstance(value, dict) or not value:
            raise DialectError(f"{name}: must be an object", param=name)
    thinking = fields.get("thinking")
    if thinking is not None and thinking.get("type") not in ("enabled", "disabled", "adaptive"):
        raise DialectError(
            "thinking.type: must be 'enabled' (with budget_tokens), 'adaptive' or 'disabled'",
            param="thinking",
        )
    return fields or None


# rendering -----------------------------------------------------------------------------------
def stop_reason(finish_reason: str) -> str:
    return STOP_REASON.get(finish_reason, "end_turn")


def stopped(answer: Answer) -> dict[str, Any]:
    """`stop_reason` and `stop_sequence`: "stop_sequence" and the one that matched when the
    provider said so (Anthropic does; OpenAI-format and Gemini providers say only that the
    text stopped, which reads as "end_turn")."""
    if answer.stop_sequence and answer.finish_reason == "stop":
        return {"stop_reason": "stop_sequence", "stop_sequence": answer.stop_sequence}
    return {"stop_reason": stop_reason(answer.finish_reason), "stop_sequence": None}


def _input(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def render_message(answer: Answer, message_id: str) -> dict[str, Any]:
    """The answer as an Anthropic `Message`."""
    content: list[dict[str, Any]] = [dict(block) for block in answer.thinking]
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)}
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        **stopped(answer),
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
    }


Sse = tuple[str, dict[str, Any]]


class MessageStream:
    """Renders one stream: `start()`, then `feed()` per event, then `finish()` or `error()`.
    Each returns the (event name, data) pairs to send, in Anthropic's order: one content
    block open at a time, each closed before the next starts."""

    def __init__(self, message_id: str, model: str) -> None:
        self.message_id = message_id
        self.model = model
        self._index = -1  # the content block open now, if `_open`
        self._open = ""  # "text", "thinking", "tool:<n>" or ""
        self._tools: dict[int, int] = {}  # tool call index -> its content block index

    def start(self) -> list[Sse]:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def feed(self, event: Event) -> list[Sse]:
        if isinstance(event, TextDelta):
            return [
                *self._opened("text", {"type": "text", "text": ""}),
                self._delta({"type": "text_delta", "text": event.text}),
            ]
        if isinstance(event, ThinkingDelta) and event.redacted:
            block = {"type": "redacted_thinking", "data": event.redacted}
            out = self._opened(f"redacted:{self._index + 1}", block)
            return [*out, *self._closed()]
        if isinstance(event, ThinkingDelta):
            out = self._opened("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if event.thinking:
                out.append(self._delta({"type": "thinking_delta", "thinking": event.thinking}))
            if event.signature:
                out.append(self._delta({"type": "signature_delta", "signature": event.signature}))
            return out
        return self._tool(event)

    def _tool(self, event: ToolCallDelta) -> list[Sse]:
        out: list[Sse] = []
        key = f"tool:{event.index}"
        if event.index not in self._tools:
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            out = self._opened(key, block)
            self._tools[event.index] = self._index
        elif self._open != key:
            # a later fragment of a tool call whose block was closed: Anthropic's sequence
            # has no way back, so it cannot be rendered (no provider interleaves them)
            return out
        if event.arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}))
        return out

    def _opened(self, kind: str, block: dict[str, Any]) -> list[Sse]:
        if self._open == kind:
            return []
        out = self._closed()
        self._index += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [*out, ("content_block_start", start)]

    def _closed(self) -> list[Sse]:
        if not self._open:
            return []
        self._open = ""
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> Sse:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def finish(self, answer: Answer) -> list[Sse]:
        usage = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
        delta = stopped(answer)
        return [
            *self._closed(),
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]

    def error(self, kind: str, message: str) -> list[Sse]:
        return [("error", error_body(kind, message))]


def encode(events: list[Sse]) -> Iterator[bytes]:
    """Server-sent events as Anthropic sends them (`event:` and `data:` lines)."""
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
