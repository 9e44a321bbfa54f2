"""Fast unit tests of the policies behind the original hub's `[HUB_LIMITS]`, `[DEBUG]`,
model and search keys; end-to-end runs are in tests/e2e/test_original_pyfun.py."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from guardian.call_log import log_request, log_response
from guardian.calls.call_budget import MAX_BUDGET_S, call_budget
from guardian.calls.model_rates import admit_model
from guardian.calls.provider_slots import ProviderSlots
from guardian.calls.retries import retry_wait, retryable, with_retries
from guardian.limits import Limits
from guardian.model_info import model_entry
from guardian.providers.search import result_count
from guardian.providers.types import ProviderFailure
from protocol.errors import RateLimited
from protocol.pyfun import (
    DebugConfig,
    HubLimitsConfig,
    ModelConfig,
    ProviderConfig,
    ToolConfig,
)

LIMITS = HubLimitsConfig(retry_count=2, retry_delay_sec=0.5)


def status(code: int, retry_after: float | None = None) -> ProviderFailure:
    return ProviderFailure("status", f"HTTP {code}", status=code, retry_after=retry_after)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (ProviderFailure("timeout", "timed out"), True),
        (ProviderFailure("connection", "refused"), True),
        (status(408), True),
        (status(429), True),
        (status(500), True),
        (status(503), True),
        (status(400), False),
        (status(401), False),  # the key ring's business
        (status(403), False),
        (status(404), False),
        (status(422), False),
        (ProviderFailure("malformed", "not JSON"), False),
        (ProviderFailure("config", "no key"), False),
    ],
)
def test_what_is_retried_on_the_same_provider(failure: ProviderFailure, expected: bool) -> None:
    assert retryable(failure) is expected


def test_retry_wait_counts_retries_and_prefers_a_longer_retry_after() -> None:
    failure = status(503)
    assert retry_wait(failure, 0, LIMITS, 60, is_last=False, streamed=False) == 0.5
    assert retry_wait(failure, 1, LIMITS, 60, is_last=False, streamed=False) == 0.5
    assert retry_wait(failure, 2, LIMITS, 60, is_last=False, streamed=False) is None
    assert retry_wait(status(429, 7.0), 0, LIMITS, 60, is_last=False, streamed=False) == 7.0
    assert retry_wait(status(429, 0.1), 0, LIMITS, 60, is_last=False, streamed=False) == 0.5


def test_retry_wait_never_after_a_streamed_chunk_nor_past_the_budget() -> None:
    failure = status(503)
    assert retry_wait(failure, 0, LIMITS, 60, is_last=True, streamed=True) is None
    assert retry_wait(failure, 0, LIMITS, 1.2, is_last=False, streamed=False) is None
    assert retry_wait(status(429, 30.0), 0, LIMITS, 20, is_last=True, streamed=False) is None


def test_without_retry_count_only_the_last_provider_waits_out_retry_after() -> None:
    none = HubLimitsConfig()
    assert retry_wait(status(429, 2.0), 0, none, 60, is_last=False, streamed=False) is None
    assert retry_wait(status(429, 2.0), 0, none, 60, is_last=True, streamed=False) == 2.0
    assert retry_wait(status(429, 2.0), 1, none, 60, is_last=True, streamed=False) is None
    assert retry_wait(status(503), 0, none, 60, is_last=True, streamed=False) is None


async def test_with_retries_asks_again_then_succeeds() -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise status(502)
        return "ok"

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    result = await with_retries(
        call,
        name="p",
        describe=ProviderFailure.describe,
        limits=LIMITS,
        deadline=time.monotonic() + 60,
        is_last=False,
        sleep=sleep,
    )
    assert (result, len(calls), waits) == ("ok", 3, [0.5, 0.5])


async def test_with_retries_gives_up_with_the_last_failure() -> None:
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        raise status(500 + len(calls))

    async def sleep(seconds: float) -> None:
        return None

    with pytest.raises(ProviderFailure) as info:
        await with_retries(
            call,
            name="p",
            describe=ProviderFailure.describe,
            limits=LIMITS,
            deadline=time.monotonic() + 60,
            is_last=False,
            sleep=sleep,
        )
    assert info.value.status == 503 and len(calls) == 3


async def test_with_retries_stops_once_a_chunk_was_streamed() -> None:
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        raise status(502)

    with pytest.raises(ProviderFailure):
        await with_retries(
            call,
            name="p",
            describe=ProviderFailure.describe,
            limits=LIMITS,
            deadline=time.monotonic() + 60,
            is_last=False,
            streamed=lambda: True,
        )
    assert len(calls) == 1


async def test_provider_slots_cap_concurrency_per_provider() -> None:
    slots = ProviderSlots()
    running = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}

    async def work(provider: str) -> None:
        async with slots.hold(provider, 2, 5.0):
            running[provider] += 1
            peak[provider] = max(peak[provider], running[provider])
            await asyncio.sleep(0.01)
            running[provider] -= 1

    await asyncio.gather(*(work("a") for _ in range(6)), *(work("b") for _ in range(3)))
    assert peak == {"a": 2, "b": 2}


async def test_provider_slots_without_a_cap_and_timing_out() -> None:
    slots = ProviderSlots()
    async with slots.hold("a", None, 0.0), slots.hold("a", None, 0.0):
        pass  # no cap: never waits
    async with slots.hold("a", 1, 1.0):
        with pytest.raises(ProviderFailure) as info:
            async with slots.hold("a", 1, 0.05):
                pass
    assert info.value.kind == "timeout" and "MAX_PARALLEL_REQUESTS" in info.value.message
    async with slots.hold("a", 1, 0.05):  # released after the block
        pass


def _provider(name: str, timeout: float) -> ProviderConfig:
    return ProviderConfig(
        name=name,
        kind="llm",
        api="openai",
        base_url="https://x.example/v1",
        env_keys=(),
        timeout_sec=timeout,
    )


def test_call_budget_precedence() -> None:
    chain = [_provider("a", 30), _provider("b", 20)]
    tool = ToolConfig(name="t", provider_type="llm", timeout_sec=12)
    limits = HubLimitsConfig(request_timeout_sec=40, search_timeout_sec=9)
    assert call_budget(tool, chain, limits, "llm") == 12
    assert call_budget(None, chain, limits, "llm") == 40
    assert call_budget(None, chain, limits, "search") == 9
    assert call_budget(None, chain, HubLimitsConfig(), "llm") == 50
    assert call_budget(None, [_provider("c", 500)] * 2, HubLimitsConfig(), "llm") == MAX_BUDGET_S


def test_result_count_default_and_cap() -> None:
    plain = ProviderConfig(
        name="brave", kind="search", api="brave", base_url="https://s.example", env_keys=()
    )
    shaped = ProviderConfig(
        name="brave",
        kind="search",
        api="brave",
        base_url="https://s.example",
        env_keys=(),
        default_results=3,
        max_results=10,
    )
    assert (result_count(None, plain), result_count(40, plain)) == (5, 40)
    assert (result_count(None, shaped), result_count(7, shaped), result_count(40, shaped)) == (
        3,
        7,
        10,
    )


def test_model_entry_shows_both_spellings() -> None:
    model = ModelConfig(
        id="m",
        requests_per_day=100,
        cost_input_per_1m=1.1,
        cost_output_per_1m=5.0,
        context_window=1000,
        capabilities=("text",),
    )
    entry = model_entry("m", "p", True, model)
    assert entry["requests_per_day"] == 100
    assert (entry["cost_input_per_1k"], entry["cost_output_per_1k"]) == (0.0011, 0.005)
    assert entry["context_tokens"] == entry["context_window"] == 1000
    bare = model_entry("x", "p", False, None)
    assert bare["cost_input_per_1k"] is None and bare["capabilities"] == []


def _limits() -> Limits:
    return Limits(cast(Any, SimpleNamespace(kind="sqlite")))


async def test_requests_per_day_is_counted_per_model() -> None:
    limits = _limits()
    model = ModelConfig(id="m", requests_per_day=2)
    await admit_model(limits, "m", model)
    await admit_model(limits, "m", model)
    with pytest.raises(RateLimited) as info:
        await admit_model(limits, "m", model)
    assert "per day" in info.value.message
    assert 1 <= info.value.data["retry_after_s"] <= 86_400
    await admit_model(limits, "other", ModelConfig(id="other", requests_per_day=2))
    await admit_model(limits, "m", None)  # no block: no limit
    await admit_model(None, "m", model)  # no limits: no check


async def test_per_minute_and_per_day_both_hold() -> None:
    limits = _limits()
    model = ModelConfig(id="m", requests_per_min=1, requests_per_day=5)
    await admit_model(limits, "m", model)
    with pytest.raises(RateLimited, match="per minute"):
        await admit_model(limits, "m", model)


def test_call_log_writes_metadata_only_and_only_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sealgate.guardian.calls")
    off = DebugConfig()
    log_request(off, tool="t", provider="p", model="m", input_bound=10, stream=False)
    assert caplog.records == []
    on = DebugConfig(log_requests=True, log_responses=True)
    log_request(on, tool="t", provider="p", model="m", input_bound=10, stream=True)
    log_response(
        on, tool="t", provider="p", model="m", outcome="ok", input_tokens=3, output_tokens=4
    )
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("request tool=t provider=p model=m")
    assert "output_tokens=4" in lines[1]


def test_call_log_keeps_a_caller_named_model_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sealgate.guardian.calls")
    on = DebugConfig(log_requests=True)
    log_request(on, tool="t", provider="p", model="m\nFAKE line", input_bound=1, stream=False)
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "'m\\nFAKE line'" in record.getMessage()


async def test_slotted_send_waits_for_a_slot_within_its_timeout() -> None:
    slots = ProviderSlots()
    timeouts: list[float] = []

    async def send(key: str | None, timeout: float) -> str:
        timeouts.append(timeout)
        await asyncio.sleep(0.1)
        return key or ""

    wrapped = slots.slotted("a", 1, send)
    assert slots.slotted("a", None, send) is send
    first, second = await asyncio.gather(wrapped("k1", 5.0), wrapped("k2", 5.0))
    assert (first, second) == ("k1", "k2")
    assert timeouts[0] > timeouts[1] >= 5.0 - 0.2  # the second waited ~0.1 s for its slot
    with pytest.raises(ProviderFailure):
        await asyncio.gather(wrapped("k3", 5.0), wrapped("k4", 0.05))
