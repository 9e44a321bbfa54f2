"""The money arithmetic, in process: a call's maximum cost, what an ending bills, and memory
reservations under concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from guardian.calls.costs import (
    DEFAULT_MAX_TOKENS,
    FRAMING_TOKENS,
    cost_usd,
    input_token_bound,
    max_cost_usd,
    output_token_bound,
    request_bytes,
    text_token_bound,
)
from guardian.calls.metering import LINK_LOST, SHUTDOWN, CallMeter, cancel_reason, metered
from guardian.ledger import UsageLedger
from guardian.limits import Limits
from guardian.redact import Redactor
from guardian.storage.base import Reservation
from protocol.errors import BudgetExceeded, ConnectionLost, ProviderError
from protocol.pyfun import ModelConfig

PRICED = ModelConfig(id="m", cost_input_per_1m=3.0, cost_output_per_1m=15.0, max_output_tokens=512)


@pytest.mark.parametrize(
    "text", ["hello", "naïve café", "日本語のテキスト", "🙂" * 50, "\x00\x01 bytes", ""]
)
def test_the_input_bound_is_never_below_the_bytes_sent(text: str) -> None:
    payload = {"messages": [{"role": "user", "content": text}], "system": "be brief"}
    bound = input_token_bound(payload)
    assert bound >= len(text.encode("utf-8")) + FRAMING_TOKENS
    assert bound == request_bytes(payload) + FRAMING_TOKENS


def test_the_input_bound_is_capped_by_the_context_window() -> None:
    model = ModelConfig(id="small", context_window=100)
    assert input_token_bound({"messages": [{"content": "x" * 10_000}]}, model) == 100


@pytest.mark.parametrize(
    ("requested", "tool_default", "model", "expected"),
    [
        (None, None, None, DEFAULT_MAX_TOKENS),
        (None, 300, None, 300),
        (50, 300, None, 50),
        (4096, None, PRICED, 512),
        (None, None, PRICED, 512),
        (100, None, PRICED, 100),
    ],
)
def test_the_output_bound_is_max_tokens_capped_by_the_model(
    requested: int | None, tool_default: int | None, model: ModelConfig | None, expected: int
) -> None:
    assert output_token_bound(requested, tool_default, model) == expected


def test_max_cost_and_cost() -> None:
    assert max_cost_usd(PRICED, 1000, 512) == pytest.approx((1000 * 3 + 512 * 15) / 1e6)
    assert max_cost_usd(ModelConfig(id="free"), 1000, 512) is None
    assert cost_usd(PRICED, 12, 7) == pytest.approx((12 * 3 + 7 * 15) / 1e6)
    assert text_token_bound("abc") == 3 and text_token_bound("é") == 2


class _Store:
    """Storage stand-in: yields to the loop on every write, as a real one does."""

    kind = "sqlite"

    def __init__(self) -> None:
        self.reserved: list[Reservation] = []

    async def reserve(
        self, held: Reservation, budget: float | None, *, alone: bool = False
    ) -> float | None:
        await asyncio.sleep(0)
        self.reserved.append(held)
        return None


def meter(limits: Limits | None = None) -> tuple[CallMeter, list[Any]]:
    ledger = UsageLedger(_Store())  # type: ignore[arg-type]
    m = CallMeter(ledger=ledger, limits=limits, principal="p", tool="t", action="llm.complete")
    m.begin("prov", "m", PRICED, input_bound=100, max_tokens=50)
    return m, ledger._rows


def test_an_unanswered_request_is_billed_its_maximum() -> None:
    m, rows = meter()
    m.sending()
    m.fail("timeout", [])
    (entry,) = rows
    assert (entry.usage.input_tokens, entry.usage.output_tokens) == (100, 50)
    assert entry.usage.cost_usd == pytest.approx(max_cost_usd(PRICED, 100, 50))
    assert entry.audit is not None and entry.audit.outcome == "timeout"


def test_a_cut_stream_is_billed_for_what_arrived_and_ends_once() -> None:
    m, rows = meter()
    m.sending()
    m.streaming()
    m.usage(12, 1)
    m.text("forty bytes of text arrived before the cut")
    m.fail(LINK_LOST, [])
    m.fail("internal", [])  # a second ending is ignored
    m.succeed(12, 7, [])
    (entry,) = rows
    assert entry.usage.outcome == LINK_LOST
    assert (entry.usage.input_tokens, entry.usage.output_tokens) == (12, 42)


def test_a_refusal_bills_nothing_and_an_earlier_timeout_is_carried() -> None:
    m, rows = meter()
    m.sending()  # first provider: sent, never answered, chain moves on
    m.begin("second", "m", PRICED, input_bound=100, max_tokens=50)
    m.sending()
    m.answered()  # refused with a status
    m.fail("provider_error", [])
    (entry,) = rows
    assert (entry.usage.input_tokens, entry.usage.output_tokens) == (100, 50)


def test_cancel_reasons() -> None:
    assert cancel_reason(asyncio.CancelledError(LINK_LOST)) == LINK_LOST
    assert cancel_reason(asyncio.CancelledError()) == "cancelled"
    assert cancel_reason(asyncio.CancelledError("anything else")) == "cancelled"


async def test_memory_reservations_hold_the_budget_under_concurrency() -> None:
    store = _Store()
    limits = Limits(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(limits.reserve("p", 1.0, 0.3, tool="t", provider="x", model="m") for _ in range(30)),
        return_exceptions=True,
    )
    held = [r for r in results if isinstance(r, Reservation)]
    assert len(held) == 3 and len(store.reserved) == 3
    assert all(isinstance(r, BudgetExceeded) for r in results if r not in held)
    for reservation in held:
        limits.settle(reservation, 0.1)  # each cost less than its maximum
    assert await limits.counters.read("spend:p", held[0].window_start) == pytest.approx(0.3)
    again = await limits.reserve("p", 1.0, 0.7, tool="t", provider="x", model="m")
    with pytest.raises(BudgetExceeded) as refused:
        await limits.reserve("p", 1.0, 0.01, tool="t", provider="x", model="m")
    assert refused.value.data["reserve_usd"] == 0.01
    limits.settle(again, 0.0)


@pytest.mark.parametrize(
    ("raised", "outcome"),
    [
        (ConnectionLost("gone"), LINK_LOST),
        (asyncio.CancelledError(SHUTDOWN), SHUTDOWN),
        (asyncio.CancelledError(), "cancelled"),
        (ProviderError("refused"), "provider_error"),
        (RuntimeError("a bug"), "internal"),
    ],
)
async def test_each_way_a_call_ends_writes_one_row(raised: BaseException, outcome: str) -> None:
    m, rows = meter()
    m.sending()

    async def work() -> None:
        raise raised

    with pytest.raises(type(raised)):
        await metered(m, [], work(), Redactor())
    (entry,) = rows
    assert entry.usage.outcome == outcome
    assert entry.audit is not None and entry.audit.outcome == outcome


async def test_an_ending_audits_provider_text_redacted() -> None:
    secret = "sk-fake-secret-value-0123456789"
    m, rows = meter()

    async def work() -> None:
        raise ProviderError(f"{'x' * 280} refused key {secret}")

    with pytest.raises(ProviderError):
        await metered(m, [], work(), Redactor([secret]))
    (entry,) = rows
    assert entry.audit is not None and "sk-fake" not in entry.audit.detail
