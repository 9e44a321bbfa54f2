"""The figures a call is billed from a provider's untrusted usage report (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from guardian.calls.costs import text_token_bound
from guardian.calls.metering import CallMeter
from guardian.calls.usage_figures import Billed, at_most, bill, cut_short, reported_count
from protocol.pyfun import ModelConfig


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (12, 12),
        (10**29, 10**29),  # kept: bill() clamps it and says so
        (None, None),
        (-1, None),
        (2.5, None),
        (12.0, None),
        ("12", None),
        (True, None),
        ([12], None),
        ({"n": 12}, None),
    ],
)
def test_only_a_whole_number_is_a_report(value: Any, expected: int | None) -> None:
    assert reported_count(value) == expected


def test_figures_within_the_bounds_are_billed_as_reported() -> None:
    billed = bill(10, 6, input_bound=100, max_tokens=50, text_tokens=40)
    assert billed == Billed(10, 6, estimated=False, clamped=False)


def test_figures_beyond_the_bounds_are_clamped() -> None:
    assert bill(10**29, 6, input_bound=100, max_tokens=50, text_tokens=40) == Billed(
        100, 6, clamped=True
    )
    assert bill(10, 10**29, input_bound=100, max_tokens=50, text_tokens=40) == Billed(
        10, 50, clamped=True
    )
    assert bill(101, 51, input_bound=100, max_tokens=50, text_tokens=0) == Billed(
        100, 50, clamped=True
    )


@pytest.mark.parametrize("bad", [None, -5, 2.5, "10", True])
def test_no_report_is_billed_what_sealgate_counts(bad: Any) -> None:
    assert bill(bad, bad, input_bound=100, max_tokens=50, text_tokens=40) == Billed(
        100, 40, estimated=True
    )


def test_an_estimate_of_the_output_never_passes_max_tokens() -> None:
    assert bill(10, None, input_bound=100, max_tokens=50, text_tokens=4000) == Billed(
        10, 50, estimated=True
    )


def test_one_side_may_be_reported_and_the_other_clamped_or_estimated() -> None:
    assert bill(None, 10**9, input_bound=100, max_tokens=50, text_tokens=3) == Billed(
        100, 50, estimated=True, clamped=True
    )


def test_embeddings_have_no_output() -> None:
    assert bill(None, None, input_bound=30, max_tokens=0, text_tokens=0) == Billed(
        30, 0, estimated=True
    )


def test_a_stream_cut_short_bills_at_least_the_text_seen_and_is_estimated() -> None:
    assert cut_short(12, None, input_bound=100, max_tokens=50, text_tokens=39) == Billed(
        12, 39, estimated=True
    )
    assert cut_short(10**29, 3, input_bound=100, max_tokens=50, text_tokens=20) == Billed(
        100, 20, estimated=True, clamped=True
    )


def test_a_request_never_answered_is_billed_its_maximum() -> None:
    assert at_most(100, 50) == Billed(100, 50, estimated=True)


def test_bills_add_up_and_keep_their_marks() -> None:
    total = Billed(1, 2, estimated=True).plus(Billed(3, 4, clamped=True))
    assert total == Billed(4, 6, estimated=True, clamped=True)


def test_the_meter_bills_an_absurd_reply_within_the_request() -> None:
    """End to end in memory: no ledger, no budget; the cost follows the bounded figures."""
    meter = CallMeter(ledger=None, limits=None, principal="p", tool="t", action="llm.complete")
    model = ModelConfig(id="m", provider="x", cost_input_per_1m=3.0, cost_output_per_1m=15.0)
    meter.begin("x", "m", model, 100, 50)
    meter.sending()
    meter.answered()
    meter.text("some text")
    billed = meter.succeed(10**29, None, [])
    assert billed == Billed(100, text_token_bound("some text"), estimated=True, clamped=True)
    assert meter.cost == pytest.approx((100 * 3 + 9 * 15) / 1e6)
