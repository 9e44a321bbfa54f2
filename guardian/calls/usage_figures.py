"""The token figures a call is billed: a provider's report, checked against what SealGate can
count itself. Pure logic, no I/O.

A provider's reply is untrusted input. Its usage is believed only within what the request
allows:

- input: at most the request's bound (`guardian.calls.costs.input_token_bound`: every byte sent
  counts as a token, capped by the model's context window);
- output: at most the call's `max_tokens`, which the provider was sent.

A figure above its bound is billed at the bound and the row is marked `clamped`. A figure
that is missing, negative, fractional, a string or anything but a whole number is not a
report at all: the call is billed what SealGate counts, marked `estimated`, conservatively
(input: the request's bound; output: one token per byte of the text and tool calls that
came back, at most `max_tokens`). No tokenizer makes more tokens than bytes, so an estimate
never bills less than the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Billed:
    """What a call (or one attempt of it) is billed, and how the figures were obtained."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False  # SealGate counted at least one figure itself
    clamped: bool = False  # the provider reported more than the request allowed

    def plus(self, other: Billed) -> Billed:
        return Billed(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
            self.clamped or other.clamped,
        )


NOTHING = Billed(0, 0)


def reported_count(value: Any) -> int | None:
    """A token count as a provider reported it: a whole number >= 0, else None (not a
    report). A huge number is kept: `bill` clamps it, and the row says so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _one(reported: int | None, bound: int, counted: int) -> tuple[int, bool, bool]:
    """(figure, estimated, clamped) for one side of the bill."""
    if reported is None:
        return min(counted, bound), True, False
    if reported > bound:
        return bound, False, True
    return reported, False, False


def bill(
    reported_input: int | None,
    reported_output: int | None,
    *,
    input_bound: int,
    max_tokens: int,
    text_tokens: int,
) -> Billed:
    """The figures a whole reply is billed: the provider's, within the request's bounds;
    SealGate's own count where the provider gave none. `text_tokens` is the bound of what
    came back (`guardian.calls.costs.text_token_bound`)."""
    input_bound, max_tokens = max(0, input_bound), max(0, max_tokens)
    used_in, est_in, clamp_in = _one(reported_count(reported_input), input_bound, input_bound)
    used_out, est_out, clamp_out = _one(
        reported_count(reported_output), max_tokens, max(0, text_tokens)
    )
    return Billed(used_in, used_out, est_in or est_out, clamp_in or clamp_out)


def cut_short(
    reported_input: int | None,
    reported_output: int | None,
    *,
    input_bound: int,
    max_tokens: int,
    text_tokens: int,
) -> Billed:
    """A stream that stopped before its end: what was reported so far, within bounds, and at
    least the text that arrived; always `estimated` (the provider's final figures never
    came)."""
    whole = bill(
        reported_input,
        reported_output,
        input_bound=input_bound,
        max_tokens=max_tokens,
        text_tokens=text_tokens,
    )
    seen = min(max(0, text_tokens), max(0, max_tokens))
    return Billed(whole.input_tokens, max(whole.output_tokens, seen), True, whole.clamped)


def at_most(input_bound: int, max_tokens: int) -> Billed:
    """A request the provider got and never answered usably: its maximum, as an estimate."""
    return Billed(max(0, input_bound), max(0, max_tokens), True, False)
