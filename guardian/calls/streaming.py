"""A provider's stream read into chunks for the caller and one assembled result.

The adapter turns each SSE event into a `StreamDelta`; here the deltas are observed in the
attempt's record, passed on as `{"text", "tool_calls"}` chunks, and folded into the
`ChatResult` the call returns.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from guardian.calls.record import ANSWERING, Observed
from guardian.providers.adapters import LLMAdapter
from guardian.providers.sse import events
from guardian.providers.types import ChatResult, ProviderFailure, StreamState

#: The largest single SSE event a provider may send.
MAX_STREAM_EVENT_BYTES = 1024 * 1024
Emit = Callable[[Any], Awaitable[None]]


class Emitter:
    """Passes stream chunks on and counts those that reached the caller: once one has,
    the call may neither fall back nor retry (the caller would see text twice)."""

    def __init__(self, emit: Emit, first: dict[str, Any] | None = None) -> None:
        self._emit = emit
        self.sent = 0
        #: fields the first chunk carries besides its text (the call's receipt id)
        self._first = first
        #: time.monotonic() when the first chunk reached the caller (time to first chunk)
        self.first_at: float | None = None

    async def __call__(
        self,
        text: str,
        tool_calls: list[dict[str, Any]] | None = None,
        thinking: dict[str, str] | None = None,
    ) -> None:
        chunk: dict[str, Any] = {"text": text}
        if tool_calls:
            chunk["tool_calls"] = tool_calls
        if thinking:
            chunk["thinking"] = thinking
        if self._first:
            chunk.update(self._first)
            self._first = None
        await self._emit(chunk)
        if not self.sent:
            self.first_at = time.monotonic()
        self.sent += 1


def chunks_sent(emitter: Emitter | None) -> int:
    return emitter.sent if emitter is not None else 0


def merge_tool_calls(calls: dict[int, dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    """Fold OpenAI-style tool call deltas (by index) into whole calls."""
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", len(calls))
        index = index if isinstance(index, int) else len(calls)
        call = calls.setdefault(
            index,
            {
                "index": index,
                "id": "",
                "type": "function",
                "function": {"name": "", "arguments": ""},
            },
        )
        if delta.get("id"):
            call["id"] = delta["id"]
        given = delta.get("function")
        function: dict[str, Any] = given if isinstance(given, dict) else {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]


async def read_stream(
    chunks: AsyncIterator[bytes], adapter: LLMAdapter, emitter: Emitter, observed: Observed
) -> ChatResult:
    """Read a provider's SSE body to its end (or `[DONE]`), passing text on as it comes."""
    result = ChatResult(text="", model="")
    parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    state = StreamState()
    try:
        async for event, data in events(chunks, MAX_STREAM_EVENT_BYTES):
            if data.strip() == "[DONE]":
                break
            try:
                parsed = json.loads(data)
            except ValueError:
                raise ProviderFailure("malformed", "stream event is not JSON") from None
            observed.phase = ANSWERING
            delta = adapter.parse_event(event, parsed, state)
            if delta is None:
                continue
            if delta.input_tokens is not None:
                observed.input_tokens = delta.input_tokens
            if delta.output_tokens is not None:
                observed.output_tokens = delta.output_tokens
            if delta.model:
                result.model = delta.model
            if delta.input_tokens is not None:
                result.input_tokens = delta.input_tokens
            if delta.output_tokens is not None:
                result.output_tokens = delta.output_tokens
            if delta.finish_reason:
                result.finish_reason = delta.finish_reason
            if delta.stop_sequence:
                result.stop_sequence = delta.stop_sequence
            if delta.tool_calls:
                merge_tool_calls(calls, delta.tool_calls)
            if delta.text or delta.tool_calls or delta.thinking:
                parts.append(delta.text)
                seen = delta.text + (json.dumps(delta.tool_calls) if delta.tool_calls else "")
                seen += json.dumps(delta.thinking) if delta.thinking else ""
                observed.text_bytes += len(seen.encode("utf-8"))
                await emitter(delta.text, delta.tool_calls, delta.thinking)
    except ValueError as exc:
        raise ProviderFailure("malformed", str(exc)) from None
    result.text = "".join(parts)
    result.tool_calls = [calls[index] for index in sorted(calls)]
    if result.tool_calls and result.finish_reason == "stop":
        result.finish_reason = "tool_calls"
    return result
