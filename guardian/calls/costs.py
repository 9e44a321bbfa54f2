"""What a call may cost at most, and what it cost: pure arithmetic, no I/O.

A budget holds only if a call's maximum cost is reserved before the call leaves (see
`guardian.budget`). The maximum is bounded from the request itself, without a tokenizer:

- input: every byte of the request as sent (messages, system prompt, tools, response
  format, JSON framing included) counts as one token. Byte-level BPE and SentencePiece with
  byte fallback never make more tokens than bytes, so this bound is never below the truth;
  the model's `context_window`, when configured, caps it (a provider refuses more).
- output: the call's `max_tokens`, already capped by the model's `max_output_tokens`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from protocol.pyfun import ModelConfig

#: Conservative: one token per byte (no tokenizer makes more tokens than bytes).
BYTES_PER_TOKEN = 1
#: Per-request framing a provider adds around the messages (role markers, BOS, ...).
FRAMING_TOKENS = 16
#: max_tokens when neither the request nor the tool sets one
DEFAULT_MAX_TOKENS = 1024


def cost_usd(model: ModelConfig | None, input_tokens: int, output_tokens: int) -> float | None:
    """The cost of tokens at the model's prices; None when the model has no cost entry."""
    if model is None or model.cost_input_per_1m is None or model.cost_output_per_1m is None:
        return None
    cost = input_tokens * model.cost_input_per_1m + output_tokens * model.cost_output_per_1m
    return round(cost / 1_000_000, 8)


def request_bytes(payload: Any) -> int:
    """The size of what will be sent, as compact UTF-8 JSON."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return len(text.encode("utf-8"))


def input_token_bound(payload: Any, model: ModelConfig | None = None) -> int:
    """At most this many input tokens, whatever the tokenizer."""
    return input_bound_of(request_bytes(payload), model)


def input_bound_of(size: int, model: ModelConfig | None = None) -> int:
    """`input_token_bound` from the request's size in bytes, measured once per call."""
    bound = math.ceil(size / BYTES_PER_TOKEN) + FRAMING_TOKENS
    if model is not None and model.context_window:
        bound = min(bound, int(model.context_window))
    return bound


def output_token_bound(
    requested: int | None, tool_default: int | None, model: ModelConfig | None
) -> int:
    """The call's max_tokens: the request's, else the tool's, else the default, capped by the
    model's `max_output_tokens`. The provider is sent this, so it bounds the output."""
    wanted = int(requested or tool_default or DEFAULT_MAX_TOKENS)
    if model is not None and model.max_output_tokens is not None:
        wanted = min(wanted, int(model.max_output_tokens))
    return wanted


def text_token_bound(text: str) -> int:
    """At most this many tokens made `text` (output seen on a stream that did not finish)."""
    return bytes_token_bound(len(text.encode("utf-8")))


def bytes_token_bound(size: int) -> int:
    """At most this many tokens made `size` bytes of text."""
    return math.ceil(size / BYTES_PER_TOKEN)


def max_cost_usd(model: ModelConfig | None, input_bound: int, max_tokens: int) -> float | None:
    """The most a call to `model` can cost; None when the model has no cost entry."""
    return cost_usd(model, input_bound, max(0, int(max_tokens)))
