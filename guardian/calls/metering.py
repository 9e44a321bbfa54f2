"""How a sealed call ends: exactly one usage row with what was consumed, its budget reservation
settled, and every ending but a plain success audited.

A call can end in success, a provider error, a timeout, a cancel from the sandbox (its client
went away), the loss of the sandbox's link, or the guardian's shutdown; a crash is settled at
the next start from the reservation left in storage (`guardian.limits`). What was consumed:

- a reply that arrived whole: the tokens the provider reported, within what the request
  allows, else SealGate's own count (`guardian.calls.usage_figures`: such a row is `clamped` or
  `estimated`);
- a stream that stopped early (abandoned, cut, timed out): the input tokens reported, else
  their bound, and the output tokens reported, else bounded from the text that arrived
  (`estimated`);
- a request at a provider that never answered usably (timeout, malformed reply, cancel,
  link loss, shutdown): the attempt's maximum, conservatively, since the provider may have
  finished it (`estimated`);
- a provider's error status, or a connection that never reached it: nothing.

Such an ending is billed and recorded under its own outcome, never as a success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from guardian.calls.costs import cost_usd, text_token_bound
from guardian.calls.usage_figures import NOTHING, Billed, at_most, bill, cut_short
from guardian.ledger import UsageLedger, fallback_json
from guardian.limits import Limits
from guardian.redact import Redactor
from guardian.storage.base import AuditEntry, Reservation, UsageRow
from protocol.errors import ConnectionLost, RateLimited, RPCError
from protocol.pyfun import ModelConfig

T = TypeVar("T")

#: Why a call's task was cancelled, passed as the cancel message (`Task.cancel(msg)`).
CANCELLED = "cancelled"
LINK_LOST = "link_lost"
SHUTDOWN = "shutdown"
_REASONS = {CANCELLED, LINK_LOST, SHUTDOWN}


def cancel_reason(exc: asyncio.CancelledError) -> str:
    """The outcome of a cancelled call: the reason its canceller gave, else `cancelled`."""
    reason = exc.args[0] if exc.args else None
    return reason if isinstance(reason, str) and reason in _REASONS else CANCELLED


class CallMeter:
    """What one call has consumed so far, attempt by attempt, and its single ending."""

    def __init__(
        self,
        *,
        ledger: UsageLedger | None,
        limits: Limits | None,
        principal: str,
        tool: str,
        action: str,
        ip: str = "",
        user_id: str = "",
    ) -> None:
        self.ledger = ledger
        self.limits = limits
        self.principal = principal
        self.user_id = user_id
        self.tool = tool
        self.action = action
        self.ip = ip
        self.started = time.monotonic()
        self.reservation: Reservation | None = None
        self.ended = False
        self.cost: float | None = None  # what the call was billed, once it ended
        # the current attempt
        self.provider = ""
        self.model = ""
        self.model_config: ModelConfig | None = None
        self.input_bound = 0
        self.max_tokens = 0
        self.in_flight = False  # the request is at the provider, no answer has begun
        self.answering = False  # a streamed answer has begun and has not finished
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.text_tokens = 0
        # earlier attempts in the chain that were sent and never answered
        self.carried = NOTHING
        self.carried_cost = 0.0
        self.billed = NOTHING  # what the call was billed, once it ended

    # the attempt in progress -----------------------------------------------------------------
    def begin(
        self,
        provider: str,
        model: str,
        model_config: ModelConfig | None,
        input_bound: int,
        max_tokens: int,
    ) -> None:
        """A new attempt (the next provider in the chain, or a retry)."""
        self._carry()
        self.provider, self.model, self.model_config = provider, model, model_config
        self.input_bound, self.max_tokens = input_bound, max_tokens
        self.in_flight = self.answering = False
        self.input_tokens = self.output_tokens = None
        self.text_tokens = 0

    def sending(self) -> None:
        self.in_flight, self.answering = True, False

    def answered(self) -> None:
        """The provider answered (a whole reply, or an error status): nothing is pending."""
        self.in_flight = self.answering = False

    def streaming(self) -> None:
        """The first event of a streamed answer arrived."""
        self.in_flight, self.answering = False, True

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens

    def text(self, text: str) -> None:
        self.text_tokens += text_token_bound(text)

    def _pending(self) -> Billed:
        """The tokens the current attempt has consumed if it ended now."""
        if self.in_flight:
            return at_most(self.input_bound, self.max_tokens)
        if self.answering:
            return cut_short(
                self.input_tokens or None,
                self.output_tokens,
                input_bound=self.input_bound,
                max_tokens=self.max_tokens,
                text_tokens=self.text_tokens,
            )
        return NOTHING

    def _carry(self) -> None:
        pending = self._pending()
        if pending.input_tokens or pending.output_tokens:
            self.carried = self.carried.plus(pending)
            self.carried_cost += (
                cost_usd(self.model_config, pending.input_tokens, pending.output_tokens) or 0.0
            )
        self.in_flight = self.answering = False

    # endings ---------------------------------------------------------------------------------
    def succeed(
        self, input_tokens: int | None, output_tokens: int | None, path: list[dict[str, str]]
    ) -> Billed:
        """A whole reply, with the usage the provider reported (None: none, or not a
        number): billed within the request's bounds (`guardian.calls.usage_figures`)."""
        self.in_flight = self.answering = False
        figures = bill(
            input_tokens,
            output_tokens,
            input_bound=self.input_bound,
            max_tokens=self.max_tokens,
            text_tokens=self.text_tokens,
        )
        self._end("ok", path, figures)
        return self.billed

    def fail(
        self, outcome: str, path: list[dict[str, str]], detail: str = "", *, audited: bool = True
    ) -> None:
        """An error ending, billed for whatever the attempts consumed. `audited=False` when
        the refusal is audited elsewhere already."""
        pending = self._pending()
        self.in_flight = self.answering = False
        self._end(outcome, path, pending, (detail or outcome) if audited else "")

    def _end(
        self,
        outcome: str,
        path: list[dict[str, str]],
        attempt: Billed,
        audit_detail: str = "",
    ) -> None:
        """The one ending: never twice, and never yields to the event loop, so a cancelled
        call's handler can run it."""
        if self.ended:
            return
        self.ended = True
        cost = cost_usd(self.model_config, attempt.input_tokens, attempt.output_tokens)
        if self.carried_cost:
            cost = round((cost or 0.0) + self.carried_cost, 8)
        billed = self.billed = attempt.plus(self.carried)
        input_tokens, output_tokens = billed.input_tokens, billed.output_tokens
        self.cost = cost
        if self.limits is not None and self.reservation is not None:
            self.limits.settle(self.reservation, cost or 0.0)
        if self.ledger is None:
            return
        row = UsageRow(
            ts=time.time(),
            principal=self.principal,
            tool=self.tool,
            provider=self.provider,
            model=self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            latency_ms=round((time.monotonic() - self.started) * 1000, 3),
            outcome=outcome,
            fallback_path=fallback_json(path),
            estimated=billed.estimated,
            clamped=billed.clamped,
            user_id=self.user_id,
        )
        audit = None
        if billed.clamped and not audit_detail:
            audit_detail = "the provider reported more tokens than the request allows"
        if (outcome != "ok" or billed.clamped) and audit_detail:
            audit = AuditEntry(
                principal=self.principal,
                action=self.action,
                outcome="clamped" if outcome == "ok" else outcome,
                ip=self.ip,
                detail=(
                    f"{audit_detail}; billed {input_tokens} input and {output_tokens} output"
                    f" tokens, {cost or 0.0:.6f} USD"
                    + (" (estimated)" if billed.estimated else "")
                    + (" (clamped)" if billed.clamped else "")
                ),
                tool=self.tool,
                user_id=self.user_id,
            )
        self.ledger.record(row, reservation=self.reservation, audit=audit)


async def metered(
    meter: CallMeter, path: list[dict[str, str]], work: Awaitable[T], redactor: Redactor
) -> T:
    """Run a call's work; however it ends, its meter writes the one ledger row."""
    try:
        return await work
    except asyncio.CancelledError as exc:
        reason = cancel_reason(exc)
        meter.fail(reason, path, f"the call ended early: {reason.replace('_', ' ')}")
        raise
    except ConnectionLost:  # a chunk could not be passed on: the sandbox's link is gone
        meter.fail(LINK_LOST, path, "the call ended early: link lost")
        raise
    except RateLimited as exc:  # every model was rationed: nothing was sent
        meter.fail(exc.code.value, path, audited=False)
        raise
    except RPCError as exc:  # redacted whole, then cut: no part of a secret is stored
        meter.fail(exc.code.value, path, redactor.redact_and_cut(exc.message, 300))
        raise
    except BaseException:
        meter.fail("internal", path, "the guardian hit an internal error")
        raise
