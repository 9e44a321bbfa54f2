"""The one request, answer and stream events every dialect translates to and from.

The request is what the sealed `llm.complete` / `llm.stream` take (`LlmParams`): messages in
OpenAI's chat shape, OpenAI-shaped tools and tool_choice, a system prompt, max_tokens,
temperature and stop sequences. The answer is the guardian's result map, typed. Stream events
are the guardian's chunks (`{"text"}` and OpenAI-style tool call deltas), typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: SealGate's token estimate, the guardian's budget bound (`guardian.calls.costs`): one token
#: per byte of the request as sent, plus this much framing. Never below the truth.
FRAMING_TOKENS = 16


class DialectError(Exception):
    """A request the dialect refuses before anything is sent: `kind` is one of the generic
    kinds below, each dialect names it in its own words and status."""

    def __init__(self, message: str, *, kind: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.param = param


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """One completion request, whatever dialect it came in."""

    model: str
    messages: list[dict[str, Any]]
    system: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    #: `anthropic-beta` values the client asked for; the guardian decides which are sent.
    betas: tuple[str, ...] = ()
    #: Fields only Anthropic's API takes (thinking, context_management, output_config),
    #: passed on only to an Anthropic provider.
    anthropic: dict[str, Any] | None = None
    #: `llm.complete` fields a dialect passes on by name that have no slot above (a field
    #: added to `protocol.contract.ChatFields` reaches the guardian from Chat Completions).
    extra: dict[str, Any] | None = None

    def to_params(self) -> dict[str, Any]:
        """The `LlmParams` fields of this request (without caller and tool)."""
        params: dict[str, Any] = {"model": self.model, "messages": self.messages}
        for name in (
            "system",
            "tools",
            "tool_choice",
            "max_tokens",
            "temperature",
            "stop",
            "response_format",
        ):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.betas:
            params["betas"] = list(self.betas)
        if self.anthropic:
            params["anthropic"] = self.anthropic
        for name, value in (self.extra or {}).items():
            params.setdefault(name, value)
        return params

    def estimated_tokens(self) -> int:
        """SealGate's documented estimate: the guardian's bound rule (one token per byte of
        the request as the guardian measures it, plus framing), an upper bound, not a count."""
        payload: dict[str, Any] = {"messages": self.messages, "system": self.system or ""}
        for name in ("tools", "tool_choice", "response_format"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
        return len(text.encode("utf-8")) + FRAMING_TOKENS


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the provider produced it
    #: the call as the guardian sent it (OpenAI's shape, which Chat Completions passes on)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The guardian's answer to one completion (`llm.complete`'s result, or a stream's)."""

    text: str = ""
    model: str = ""
    provider: str = ""
    #: stop | length | tool_calls | content_filter (OpenAI's words, as the guardian says)
    finish_reason: str = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    thinking: tuple[dict[str, Any], ...] = ()
    #: what the guardian did not pass on (e.g. `anthropic-beta` values off its allowlist)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    #: the stop sequence that ended the text, where the provider said which (Anthropic does;
    #: OpenAI-format and Gemini providers say only "stop", so it is None for them)
    stop_sequence: str | None = None

    @classmethod
    def of(cls, result: dict[str, Any]) -> Answer:
        usage = result.get("usage") or {}
        calls = []
        for call in result.get("tool_calls") or []:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            calls.append(
                ToolCall(
                    id=str(call.get("id") or ""),
                    name=str(function.get("name") or ""),
                    arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
                    raw=call,
                )
            )
        return cls(
            text=str(result.get("text") or ""),
            model=str(result.get("model") or ""),
            provider=str(result.get("provider") or ""),
            finish_reason=str(result.get("finish_reason") or "stop"),
            tool_calls=tuple(calls),
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
            thinking=tuple(b for b in result.get("thinking") or [] if isinstance(b, dict)),
            dropped={
                str(k): [str(v) for v in values]
                for k, values in (result.get("dropped") or {}).items()
                if isinstance(values, list)
            },
            stop_sequence=str(result["stop_sequence"]) if result.get("stop_sequence") else None,
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# stream events -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """Anthropic extended thinking: text, the block's closing signature, or a whole
    redacted block's data."""

    thinking: str = ""
    signature: str = ""
    redacted: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """Part of tool call `index`: its id and name come first, then argument fragments."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    #: the delta as the guardian sent it (OpenAI's shape, which Chat Completions passes on)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


Event = TextDelta | ThinkingDelta | ToolCallDelta


def events_of(chunk: dict[str, Any]) -> list[Event]:
    """One guardian stream chunk as typed events, in order (thinking, text, tool calls)."""
    events: list[Event] = []
    thinking = chunk.get("thinking")
    if isinstance(thinking, dict):
        events.append(
            ThinkingDelta(
                str(thinking.get("thinking") or ""),
                str(thinking.get("signature") or ""),
                str(thinking.get("redacted") or ""),
            )
        )
    text = chunk.get("text")
    if isinstance(text, str) and text:
        events.append(TextDelta(text))
    for call in chunk.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments") if function else ""
        events.append(
            ToolCallDelta(
                index=_count(call.get("index")),
                id=str(call.get("id") or ""),
                name=str((function or {}).get("name") or ""),
                arguments=arguments if isinstance(arguments, str) else "",
                raw=call,
            )
        )
    return events
