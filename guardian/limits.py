"""Rate limits and budgets, enforced in the guardian so they hold even for a hostile sandbox.

Counters live in memory with SQLite (one guardian: exact, and fast), and in PostgreSQL when
the guardian database is PostgreSQL, so that N replicas share one limit rather than N. A
budget's spend is reconciled from the usage ledger at start.
"""

from __future__ import annotations

import calendar
import datetime
import math
import time
from typing import Protocol

from guardian.storage import Storage
from protocol.errors import BudgetExceeded, RateLimited

WINDOW_S = 60.0


def month_start(now: float | None = None) -> float:
    today = datetime.datetime.fromtimestamp(now or time.time(), datetime.UTC)
    return float(calendar.timegm((today.year, today.month, 1, 0, 0, 0)))


class Counters(Protocol):
    async def add(self, key: str, window: float, amount: float) -> float: ...

    async def read(self, key: str, window: float) -> float: ...


class MemoryCounters:
    def __init__(self) -> None:
        self._values: dict[tuple[str, float], float] = {}

    async def add(self, key: str, window: float, amount: float) -> float:
        value = self._values.get((key, window), 0.0) + amount
        self._values[(key, window)] = value
        if len(self._values) > 100_000:
            cutoff = time.time() - 2 * WINDOW_S
            self._values = {
                k: v for k, v in self._values.items() if k[1] >= cutoff or k[0].startswith("spend:")
            }
        return value

    async def read(self, key: str, window: float) -> float:
        return self._values.get((key, window), 0.0)


class StorageCounters:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def add(self, key: str, window: float, amount: float) -> float:
        return await self.storage.add_to_counter(key, window, amount)

    async def read(self, key: str, window: float) -> float:
        return await self.storage.read_counter(key, window)


class Limits:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.shared = storage.kind == "postgresql"
        self.counters: Counters = StorageCounters(storage) if self.shared else MemoryCounters()

    async def start(self) -> None:
        if self.shared:
            await self.storage.prune_counters(month_start() - 86400)
            return
        start = month_start()
        for principal, spent in (await self.storage.spend_since(start)).items():
            await self.counters.add(f"spend:{principal}", start, spent)

    async def hit(self, key: str, limit: int, what: str) -> None:
        """Count one request against `limit` per minute; raise `RateLimited` past it."""
        now = time.time()
        window = math.floor(now / WINDOW_S) * WINDOW_S
        count = await self.counters.add(f"rate:{key}", window, 1)
        if count > limit:
            retry = max(1, math.ceil(window + WINDOW_S - now))
            raise RateLimited(
                f"{what}: more than {limit} requests per minute", {"retry_after_s": retry}
            )

    async def check_budget(self, principal: str, budget: float) -> None:
        spent = await self.counters.read(f"spend:{principal}", month_start())
        if spent >= budget:
            raise BudgetExceeded(
                f"the monthly budget of {budget:g} USD is spent ({spent:.4f} USD so far)",
                {"budget_usd": budget, "spent_usd": round(spent, 6)},
            )

    async def add_spend(self, principal: str, cost: float) -> None:
        if cost > 0:
            await self.counters.add(f"spend:{principal}", month_start(), cost)
