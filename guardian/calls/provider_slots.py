"""At most `[HUB_LIMITS] MAX_PARALLEL_REQUESTS` requests in flight per provider.

A call waits for a free slot within its own time budget; one that cannot get a slot in time
fails as a timeout of that provider, so the chain may move on. A changed cap (a reload)
applies to calls that start after it; calls holding a slot of the old cap finish undisturbed.
Hand-written over `asyncio.Semaphore`: no library keys semaphores by name and size.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from guardian.calls.job import Job, Send
from guardian.providers.types import ChatResult, ProviderFailure

T = TypeVar("T")


class ProviderSlots:
    def __init__(self) -> None:
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}

    def _semaphore(self, provider: str, cap: int) -> asyncio.Semaphore:
        held = self._slots.get(provider)
        if held is None or held[0] != cap:
            held = self._slots[provider] = (cap, asyncio.Semaphore(cap))
        return held[1]

    @contextlib.asynccontextmanager
    async def hold(self, provider: str, cap: int | None, timeout_s: float) -> AsyncIterator[None]:
        """One slot of `provider` for the block; `cap` None means no cap."""
        if cap is None:
            yield
            return
        semaphore = self._semaphore(provider, cap)
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                await semaphore.acquire()
        except TimeoutError:
            raise ProviderFailure(
                "timeout",
                f"timed out waiting for one of {cap} parallel request slots"
                " (MAX_PARALLEL_REQUESTS)",
            ) from None
        try:
            yield
        finally:
            semaphore.release()

    async def send(self, job: Job, inner: Send) -> ChatResult:
        """The layer: the job sent in a slot of its provider, within the job's timeout."""
        slotted = self.slotted(
            job.provider.name,
            job.limits.max_parallel_requests,
            lambda key, timeout: inner(replace(job, key=key, timeout=timeout)),
        )
        return await slotted(job.key, job.timeout)

    def slotted(
        self, provider: str, cap: int | None, send: Callable[[str | None, float], Awaitable[T]]
    ) -> Callable[[str | None, float], Awaitable[T]]:
        """`send(key, timeout)` run in a slot of `provider`; the wait for the slot comes out
        of the attempt's own timeout."""
        if cap is None:
            return send

        async def in_slot(key: str | None, timeout: float) -> T:
            started = time.monotonic()
            async with self.hold(provider, cap, timeout):
                return await send(key, max(timeout - (time.monotonic() - started), 0.001))

        return in_slot
