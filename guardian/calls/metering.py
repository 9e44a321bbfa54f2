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

Metering observes the call rather than wrapping it: while the call runs, its layers write
what happened into a `CallRecord` (`guardian.calls.record`); the meter reads that record
once, when the call has ended (`succeeded`, `ended_by`). `CallMeter` gives the same record
a method for each event, for code that reports events one by one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from guardian.calls.costs import bytes_token_bound, cost_usd
from guardian.calls.record import ANSWERING, IDLE, SENT, CallRecord, Observed
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


def pending(attempt: Observed) -> Billed:
    """The tokens an attempt has consumed if the call ended now."""
    if attempt.phase == SENT:
        return at_most(attempt.input_bound, attempt.max_tokens)
    if attempt.phase == ANSWERING:
        return cut_short(
            attempt.input_tokens or None,
            attempt.output_tokens,
            input_bound=attempt.input_bound,
            max_tokens=attempt.max_tokens,
            text_tokens=bytes_token_bound(attempt.text_bytes),
        )
    return NOTHING


def usage_of(billed: Billed) -> dict[str, Any]:
    """The usage a caller sees: what was billed, flagged when SealGate counted or bounded it."""
    usage: dict[str, Any] = {
        "input_tokens": billed.input_tokens,
        "output_tokens": billed.output_tokens,
    }
    if billed.estimated:
        usage["estimated"] = True
    if billed.clamped:
        usage["clamped"] = True
    return usage


class CallMeter:
    """Reads one call's record and writes its single ending; also reports events one by
    one into that record (`begin`, `sending`, ...), for code that meters as it goes."""

    def __init__(
        self,
        *,
        ledger: UsageLedger | None,
        limits: Limits | None,
        principal: str = "",
        tool: str = "",
        action: str = "",
        ip: str = "",
        user_id: str = "",
        record: CallRecord | None = None,
    ) -> None:
        self.ledger = ledger
        self.limits = limits
        self.record = record or CallRecord(
            principal=principal,
            tool=tool,
            action=action,
            ip=ip,
            user_id=user_id,
            started=time.monotonic(),
        )
        self.ended = False
        self.cost: float | None = None  # what the call was billed, once it ended
        self.billed = NOTHING  # what the call was billed, once it ended

    # who ---------------------------------------------------------------------------------------
    @property
    def principal(self) -> str:
        return self.record.principal

    @property
    def user_id(self) -> str:
        return self.record.user_id

    @property
    def tool(self) -> str:
        return self.record.tool

    @property
    def reservation(self) -> Reservation | None:
        return self.record.reservation

    @reservation.setter
    def reservation(self, held: Reservation | None) -> None:
        self.record.reservation = held

    @property
    def _current(self) -> Observed | None:
        return self.record.attempts[-1] if self.record.attempts else None

    # events, one by one ------------------------------------------------------------------------
    def begin(
        self,
        provider: str,
        model: str,
        model_config: ModelConfig | None,
        input_bound: int,
        max_tokens: int,
    ) -> None:
        """A new attempt (the next provider in the chain)."""
        self.record.attempts.append(
            Observed(provider, model, model_config, input_bound, max_tokens)
        )

    def _phase(self, phase: str) -> None:
        if self._current is not None:
            self._current.phase = phase

    @property
    def in_flight(self) -> bool:
        return self._current is not None and self._current.phase == SENT

    @property
    def answering(self) -> bool:
        return self._current is not None and self._current.phase == ANSWERING

    def sending(self) -> None:
        self._phase(SENT)

    def answered(self) -> None:
        """The provider answered (a whole reply, or an error status): nothing is pending."""
        self._phase(IDLE)

    def streaming(self) -> None:
        """The first event of a streamed answer arrived."""
        self._phase(ANSWERING)

    def usage(self, input_tokens: int | None, output_tokens: int | None) -> None:
        current = self._current
        if current is None:
            return
        if input_tokens is not None:
            current.input_tokens = input_tokens
        if output_tokens is not None:
            current.output_tokens = output_tokens

    def text(self, text: str) -> None:
        if self._current is not None:
            self._current.text_bytes += len(text.encode("utf-8"))

    # endings ---------------------------------------------------------------------------------
    def succeed(
        self, input_tokens: int | None, output_tokens: int | None, path: list[dict[str, str]]
    ) -> Billed:
        """A whole reply, with the usage the provider reported (None: none, or not a
        number): billed within the request's bounds (`guardian.calls.usage_figures`)."""
        current = self._current
        figures = NOTHING
        if current is not None:
            current.phase = IDLE
            figures = bill(
                input_tokens,
                output_tokens,
                input_bound=current.input_bound,
                max_tokens=current.max_tokens,
                text_tokens=bytes_token_bound(current.text_bytes),
            )
        self._end("ok", path, figures)
        return self.billed

    def fail(
        self, outcome: str, path: list[dict[str, str]], detail: str = "", *, audited: bool = True
    ) -> None:
        """An error ending, billed for whatever the attempts consumed. `audited=False` when
        the refusal is audited elsewhere already."""
        current = self._current
        figures = NOTHING
        if current is not None:
            figures = pending(current)
            current.phase = IDLE
        self._end(outcome, path, figures, (detail or outcome) if audited else "")

    def _end(
        self,
        outcome: str,
        path: list[dict[str, str]],
        attempt: Billed,
        audit_detail: str = "",
    ) -> None:
        """The one ending: never twice, and never yields to the event loop, so a cancelled
        call's handler can run it. Earlier attempts that were sent and never answered are
        carried into it."""
        if self.ended:
            return
        self.ended = True
        record = self.record
        current = self._current
        carried, carried_cost = NOTHING, 0.0
        for earlier in record.attempts[:-1]:
            consumed = pending(earlier)
            if consumed.input_tokens or consumed.output_tokens:
                carried = carried.plus(consumed)
                carried_cost += (
                    cost_usd(earlier.model_config, consumed.input_tokens, consumed.output_tokens)
                    or 0.0
                )
        model_config = current.model_config if current is not None else None
        cost = cost_usd(model_config, attempt.input_tokens, attempt.output_tokens)
        if carried_cost:
            cost = round((cost or 0.0) + carried_cost, 8)
        billed = self.billed = attempt.plus(carried)
        input_tokens, output_tokens = billed.input_tokens, billed.output_tokens
        self.cost = cost
        if self.limits is not None and record.reservation is not None:
            self.limits.settle(record.reservation, cost or 0.0)
        if self.ledger is None:
            return
        row = UsageRow(
            ts=time.time(),
            principal=record.principal,
            tool=record.tool,
            provider=current.provider if current is not None else "",
            model=current.model if current is not None else "",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            latency_ms=round((time.monotonic() - record.started) * 1000, 3),
            outcome=outcome,
            fallback_path=fallback_json(path),
            estimated=billed.estimated,
            clamped=billed.clamped,
            user_id=record.user_id,
            request_digest=record.request_digest,
            **({"key": record.key} if record.key else {}),
        )
        record.row = row
        audit = None
        if billed.clamped and not audit_detail:
            audit_detail = "the provider reported more tokens than the request allows"
        if (outcome != "ok" or billed.clamped) and audit_detail:
            audit = AuditEntry(
                principal=record.principal,
                action=record.action,
                outcome="clamped" if outcome == "ok" else outcome,
                ip=record.ip,
                detail=(
                    f"{audit_detail}; billed {input_tokens} input and {output_tokens} output"
                    f" tokens, {cost or 0.0:.6f} USD"
                    + (" (estimated)" if billed.estimated else "")
                    + (" (clamped)" if billed.clamped else "")
                ),
                tool=record.tool,
                user_id=record.user_id,
            )
        self.ledger.record(row, reservation=record.reservation, audit=audit)


def ended_by(
    meter: CallMeter, exc: BaseException, path: list[dict[str, str]], redactor: Redactor
) -> None:
    """The ending of a call that raised `exc`: its outcome, billed and audited."""
    if isinstance(exc, asyncio.CancelledError):
        reason = cancel_reason(exc)
        meter.fail(reason, path, f"the call ended early: {reason.replace('_', ' ')}")
    elif isinstance(exc, ConnectionLost):  # a chunk could not be passed on: the link is gone
        meter.fail(LINK_LOST, path, "the call ended early: link lost")
    elif isinstance(exc, RateLimited):  # every model was rationed: nothing was sent
        meter.fail(exc.code.value, path, audited=False)
    elif isinstance(exc, RPCError):  # redacted whole, then cut: no part of a secret is stored
        meter.fail(exc.code.value, path, redactor.redact_and_cut(exc.message, 300))
    else:
        meter.fail("internal", path, "the guardian hit an internal error")


def failed(
    record: CallRecord,
    exc: BaseException,
    path: list[dict[str, str]],
    *,
    ledger: UsageLedger | None,
    limits: Limits | None,
    redactor: Redactor,
) -> None:
    """The third stage of a call that raised `exc`: its one row, from its record."""
    ended_by(CallMeter(ledger=ledger, limits=limits, record=record), exc, path, redactor)


async def answered(
    record: CallRecord,
    input_tokens: int | None,
    output_tokens: int | None,
    path: list[dict[str, str]],
    *,
    ledger: UsageLedger | None,
    limits: Limits | None,
) -> tuple[Billed, float | None]:
    """The third stage of a call that answered, with the usage the provider reported: its
    one row, from its record; (what it was billed, its cost). A call that held nothing
    against a budget adds its cost to the spend (a budget's reservation is settled with the
    row instead)."""
    meter = CallMeter(ledger=ledger, limits=limits, record=record)
    billed = meter.succeed(input_tokens, output_tokens, path)
    held = record.reservation
    if (held is None or not held.counted) and meter.cost and limits is not None:
        await limits.add_spend(record.user_id or record.principal, meter.cost)
    return billed, meter.cost


async def metered(
    meter: CallMeter, path: list[dict[str, str]], work: Awaitable[T], redactor: Redactor
) -> T:
    """Run a call's work; however it ends, its meter writes the one ledger row."""
    try:
        return await work
    except BaseException as exc:
        ended_by(meter, exc, path, redactor)
        raise
