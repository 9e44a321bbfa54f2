"""Rate limits and budgets, enforced in the guardian so they hold even for a hostile sandbox.

Counters live in memory with SQLite (one guardian: exact, and fast), and in PostgreSQL when
the guardian database is PostgreSQL, so that N replicas share one limit rather than N. A
budget's spend is reconciled from the usage ledger at start.

Budgets are held by reservation: a call's maximum cost is added to its principal's spend, and
written to storage, before the call leaves; the call is refused if that would pass the budget.
When the call ends, the spend moves from the reserved amount to the real cost. So however
many calls run at once, on one guardian or many, spend passes a budget only by what a call
cost beyond its reserved maximum. Every call writes one, budgeted or not (a principal without
a budget holds nothing: its reservation is only the call's start), so a call in flight
survives a SIGKILL of the guardian: reservations left by a guardian that stopped mid-call are
billed at their full amount at the next start, as outcome `interrupted`, and audited.
"""

from __future__ import annotations

import calendar
import datetime
import logging
import math
import socket
import time
import uuid
from typing import Protocol

from guardian.storage import Storage
from guardian.storage.base import Reservation, StorageError
from protocol.errors import BudgetExceeded, RateLimited, Unavailable

logger = logging.getLogger("sealgate.guardian.limits")

WINDOW_S = 60.0
#: The window of per-day limits: a UTC day.
DAY_S = 86_400.0
#: A reservation older than this belongs to a call that can no longer be running (no call's
#: time budget is this long): any guardian may settle it.
STALE_RESERVATION_S = 3600.0


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
            now = time.time()
            self._values = {
                k: v
                for k, v in self._values.items()
                if k[1] >= now - 2 * WINDOW_S
                or k[0].startswith("spend:")
                or (k[0].startswith("day:") and k[1] >= now - 2 * DAY_S)
            }
        return value

    async def read(self, key: str, window: float) -> float:
        return self._values.get((key, window), 0.0)

    def peek(self, key: str, window: float) -> float:
        return self._values.get((key, window), 0.0)

    def bump(self, key: str, window: float, amount: float) -> None:
        """Add without yielding to the event loop: a check then a bump is atomic."""
        self._values[(key, window)] = self._values.get((key, window), 0.0) + amount


class StorageCounters:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def add(self, key: str, window: float, amount: float) -> float:
        return await self.storage.add_to_counter(key, window, amount)

    async def read(self, key: str, window: float) -> float:
        return await self.storage.read_counter(key, window)


def replica_name(runtime_dir: object) -> str:
    """Who owns a reservation: this host and runtime directory, the same after a restart."""
    return f"{socket.gethostname()}:{runtime_dir}"


class Limits:
    def __init__(self, storage: Storage, owner: str = "") -> None:
        self.storage = storage
        self.owner = owner or replica_name("-")
        self.shared = storage.kind == "postgresql"
        self.memory = None if self.shared else MemoryCounters()
        self.counters: Counters = self.memory or StorageCounters(storage)
        self.unrecorded_starts = 0  # starts not written while the database could not write
        #: Calls reserved and not yet settled: a start written while no other call is in
        #: flight skips SQLite's thread hand-off (`storage.write_start`'s `alone`).
        self.in_flight = 0

    async def start(self) -> None:
        settled = await self.storage.settle_leftover_reservations(
            self.owner, time.time() - STALE_RESERVATION_S
        )
        if settled:
            logger.warning(
                "billed %d call(s) interrupted by a stopped guardian at their maximum"
                " (%.6f USD); see the audit log",
                len(settled),
                sum(float(r["amount"]) for r in settled),
            )
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

    async def hit_daily(self, key: str, limit: int, what: str) -> None:
        """Count one request against `limit` per UTC day; raise `RateLimited` past it."""
        now = time.time()
        window = math.floor(now / DAY_S) * DAY_S
        count = await self.counters.add(f"day:{key}", window, 1)
        if count > limit:
            retry = max(1, math.ceil(window + DAY_S - now))
            raise RateLimited(
                f"{what}: more than {limit} requests per day", {"retry_after_s": retry}
            )

    async def check_budget(self, principal: str, budget: float) -> None:
        """`principal`: the budget key (`Principal.key`, the user's id for a user)."""
        spent = await self.counters.read(f"spend:{principal}", month_start())
        if spent >= budget:
            raise BudgetExceeded(
                f"the monthly budget of {budget:g} USD is spent ({spent:.4f} USD so far)",
                {"budget_usd": budget, "spent_usd": round(spent, 6)},
            )

    async def spent(self, key: str) -> float:
        """What the budget of `key` (`Principal.key`) counts this month, calls in flight
        held at their maximum."""
        return await self.counters.read(f"spend:{key}", month_start())

    async def add_spend(self, principal: str, cost: float) -> None:
        if cost > 0:
            await self.counters.add(f"spend:{principal}", month_start(), cost)

    async def reserve(
        self,
        principal: str,
        budget: float | None,
        amount: float,
        *,
        tool: str,
        provider: str,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        user_id: str = "",
    ) -> Reservation:
        """Write the call's start with its maximum (`amount` USD, `input_tokens` and
        `output_tokens`) before it leaves. With a budget (of `user_id`, or of `principal`, the
        name, for a principal without an id), hold the amount against it, or raise
        `BudgetExceeded`; without one (None), hold nothing."""
        held = Reservation(
            id=uuid.uuid4().hex,
            principal=principal,
            window_start=month_start(),
            amount=amount,
            created_at=time.time(),
            owner=self.owner,
            shared=self.shared,
            tool=tool,
            provider=provider,
            model=model,
            counted=budget is not None,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            user_id=user_id,
        )
        alone = self.in_flight == 0
        self.in_flight += 1
        try:
            return await self._write(held, budget, alone)
        except BaseException:
            self.in_flight -= 1  # refused or cancelled: no ending will settle it
            raise

    async def _write(self, held: Reservation, budget: float | None, alone: bool) -> Reservation:
        key = f"spend:{held.budget_key}"
        amount = held.amount
        if budget is None:
            try:
                await self.storage.reserve(held, None, alone=alone)
            except StorageError as exc:
                # Nothing is held against a budget, so the call still goes out (its ending
                # waits in the ledger's queue, as every write does while the database is
                # away); only a SIGKILL during the outage would lose it. Logged once.
                if not self.unrecorded_starts:
                    logger.warning("calls' starts cannot be recorded; calls go on: %s", exc)
                self.unrecorded_starts += 1
                return held
            if self.unrecorded_starts:
                logger.warning(
                    "calls' starts are recorded again (%d were not)", self.unrecorded_starts
                )
                self.unrecorded_starts = 0
            return held
        if self.memory is None:
            try:
                seen = await self.storage.reserve(held, budget)
            except StorageError as exc:
                raise Unavailable(f"the budget cannot be checked now: {exc}") from None
            if seen is not None:
                raise _over(budget, seen, amount)
            return held
        spent = self.memory.peek(key, held.window_start)
        if spent + amount > budget:
            raise _over(budget, spent, amount)
        self.memory.bump(key, held.window_start, amount)
        try:
            await self.storage.reserve(held, None, alone=alone)
        except StorageError as exc:
            self.memory.bump(key, held.window_start, -amount)
            raise Unavailable(f"the budget cannot be checked now: {exc}") from None
        return held

    def settle(self, held: Reservation, cost: float) -> None:
        """The call ended: in memory, spend moves from the reserved amount to the real cost
        now; shared counters move in the transaction that writes the call's usage row."""
        self.in_flight = max(0, self.in_flight - 1)
        if self.memory is not None and not held.shared and held.counted:
            self.memory.bump(f"spend:{held.budget_key}", held.window_start, cost - held.amount)


def _over(budget: float, spent: float, amount: float) -> BudgetExceeded:
    left = max(0.0, budget - spent)
    return BudgetExceeded(
        f"this call may cost up to {amount:.6f} USD and {left:.6f} USD of the monthly budget"
        f" of {budget:g} USD is left (calls in progress hold their maximum until they end);"
        " a lower max_tokens or a shorter request reserves less",
        {"budget_usd": budget, "spent_usd": round(spent, 6), "reserve_usd": round(amount, 6)},
    )
