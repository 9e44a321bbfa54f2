"""Retrying the same provider before the fallback chain moves on (`[HUB_LIMITS]`
`RETRY_COUNT`, `RETRY_DELAY_SEC`, the original hub's keys).

A failure is retried on the same provider only when trying again could help and cannot
repeat anything the caller saw: a timeout, a connection error, 408, 429 or 5xx, and never
once a streamed chunk has been passed on. A refused key (401, 403) is the key ring's business,
and any other 4xx means the request itself is wrong. The pause is `retry_delay_sec`, or the
provider's Retry-After when longer; a retry whose pause would not leave a second of the
call's time budget is not made, so the chain can still move on. The last provider of a chain
may always wait out one Retry-After that fits (SealGate's behaviour before these keys).

`retry_wait` is the decision, pure; `with_retries` runs it around one provider's call, and
`Retry` is that as the first layer of a running call (`guardian.calls.run`). The
failure is logged as `describe` gives it (the router's: redacted whole, then cut), never cut
here: a cut before the log filter redacts would leave the start of an echoed key whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from guardian import telemetry
from guardian.calls.job import Job, Send
from guardian.providers.types import ChatResult, ProviderFailure
from protocol.pyfun import HubLimitsConfig

logger = logging.getLogger("sealgate.guardian.retries")

T = TypeVar("T")

#: Statuses worth asking the same provider again.
RETRY_STATUSES = frozenset({408, 429})
#: Time a retry must leave for the attempt itself.
MIN_ATTEMPT_S = 1.0


def retryable(failure: ProviderFailure) -> bool:
    """Whether the same provider may succeed if asked again."""
    if failure.kind in ("timeout", "connection"):
        return True
    if failure.kind != "status" or failure.status is None:
        return False  # a malformed reply or a configuration problem repeats
    return failure.status in RETRY_STATUSES or failure.status >= 500


def retry_wait(
    failure: ProviderFailure,
    retries_done: int,
    limits: HubLimitsConfig,
    remaining_s: float,
    *,
    is_last: bool,
    streamed: bool,
) -> float | None:
    """Seconds to wait before asking the same provider again, or None to give up on it."""
    if streamed or not retryable(failure):
        return None
    allowed = limits.retry_count
    if is_last and failure.retry_after is not None:
        allowed = max(allowed, 1)
    if retries_done >= allowed:
        return None
    wait = max(limits.retry_delay_sec, failure.retry_after or 0.0)
    if wait + MIN_ATTEMPT_S > remaining_s:
        return None
    return wait


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    name: str,
    describe: Callable[[ProviderFailure], str],
    limits: HubLimitsConfig,
    deadline: float,
    is_last: bool,
    streamed: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`call()`, asked again after a retryable failure as `retry_wait` allows."""
    retries = 0
    while True:
        try:
            return await call()
        except ProviderFailure as failure:
            wait = retry_wait(
                failure,
                retries,
                limits,
                deadline - time.monotonic(),
                is_last=is_last,
                streamed=streamed(),
            )
            if wait is None:
                raise
            retries += 1
            telemetry.current().add_event(
                "sealgate.retry",
                {
                    "sealgate.retry.number": retries,
                    "sealgate.retry.wait_s": wait,
                    "error.type": telemetry.error_type_of(failure),
                },
            )
            logger.info(
                "%s: %s; asking again in %.1f s (retry %d)",
                name,
                describe(failure),
                wait,
                retries,
            )
        await sleep(wait)


class Retry:
    """The layer that asks the same provider again after a retryable failure."""

    async def send(self, job: Job, inner: Send) -> ChatResult:
        return await with_retries(
            lambda: inner(job),
            name=job.provider.name,
            describe=job.describe,
            limits=job.limits,
            deadline=job.deadline,
            is_last=job.is_last,
            streamed=lambda: job.streamed,
        )
