"""What the router hands a provider adapter, and what comes back."""

from __future__ import annotations

import dataclasses
import json as json_module
from dataclasses import dataclass, field
from typing import Any

#: HTTP statuses after which the next provider in the chain is tried: the provider (or our
#: key for it) is the problem, not the request.
FALLBACK_STATUSES = frozenset({401, 403, 408, 429})
#: Statuses after which another key of the same provider is tried first.
KEY_STATUSES = frozenset({401, 403, 429})


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """In OpenAI's chat shape; adapters translate for other wire formats."""

    model: str
    messages: list[dict[str, Any]]
    system: str = ""
    max_tokens: int = 1024
    temperature: float | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    stop: list[str] | None = None
    #: `anthropic-beta` values the client asked for (sent only if the provider allows them)
    betas: tuple[str, ...] = ()
    #: fields only Anthropic's API takes (thinking, ...): sent to Anthropic providers only
    anthropic: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class ChatResult:
    text: str
    model: str
    #: as the provider reported them; None when it did not (or not as a whole number)
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: Anthropic's thinking and redacted_thinking blocks, as sent (signatures included)
    thinking: list[dict[str, Any]] = field(default_factory=list)
    #: The stop sequence that ended the text, where the provider says which (Anthropic's
    #: `stop_sequence`); OpenAI's and Gemini's replies say only that the text stopped.
    stop_sequence: str | None = None


@dataclass(slots=True, kw_only=True)
class StreamDelta:
    """One parsed stream event: text to pass on, and usage or an end reason if it carries one."""

    text: str = ""
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: Anthropic thinking: `{"thinking": text}` or `{"signature": s}` (a block's end)
    thinking: dict[str, str] | None = None
    #: The stop sequence that ended the text (Anthropic's `message_delta`)
    stop_sequence: str = ""


@dataclass(slots=True)
class StreamState:
    """What one stream's events need remembered between them: adapters keep no per-call
    state, so one adapter serves any number of calls at once."""

    #: Anthropic: content block index -> the tool call index it became.
    tool_blocks: dict[int, int] = field(default_factory=dict)
    #: Gemini: function calls numbered so far (its events carry no index).
    tool_calls: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchRequest:
    query: str
    max_results: int = 5


@dataclass(slots=True, kw_only=True)
class SearchResult:
    results: list[dict[str, str]] = field(default_factory=list)
    answer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCall:
    """One outbound request, fully decided by guardian configuration."""

    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    params: dict[str, str] | None = None
    #: `json` already encoded, so that retries and other keys send the same bytes
    body: bytes | None = None

    def encoded(self) -> HttpCall:
        """This call with its JSON body encoded, once (the bytes every try sends)."""
        if self.json is None:
            return self
        return dataclasses.replace(self, json=None, body=json_module.dumps(self.json).encode())

    def keyed(self, auth: dict[str, str]) -> HttpCall:
        """This call with a key's headers added (the same body)."""
        return dataclasses.replace(self, headers={**self.headers, **auth}) if auth else self


class ProviderFailure(Exception):
    """One attempt at one provider failed. `kind` is status, timeout, connection or malformed."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def falls_back(self) -> bool:
        """Whether another provider may be tried (never for a request the provider refused)."""
        if self.kind != "status" or self.status is None:
            return True
        return self.status in FALLBACK_STATUSES or self.status >= 500

    @property
    def blames_key(self) -> bool:
        return self.kind == "status" and self.status in KEY_STATUSES

    def describe(self) -> str:
        return self.message


def malformed(what: str) -> ProviderFailure:
    return ProviderFailure("malformed", f"malformed reply: {what}")
