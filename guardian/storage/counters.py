"""Shared counters: rate limits and budgets counted in the database, so that replicas
sharing it share one limit."""

from __future__ import annotations

from guardian.storage.database import Database


class CounterRepository(Database):
    """Windowed counters shared by every guardian on this database."""

    # shared counters (rate limits and budgets across replicas) -------------------------------
    async def add_to_counter(self, key: str, window_start: float, amount: float) -> float:
        row = await self.fetchrow(
            self.q(
                "INSERT INTO {s}counters AS c (key, window_start, value) VALUES (?, ?, ?)"
                " ON CONFLICT (key, window_start) DO UPDATE"
                " SET value = c.value + excluded.value RETURNING value"
            ),
            key,
            window_start,
            amount,
        )
        return float(row["value"]) if row else amount

    async def read_counter(self, key: str, window_start: float) -> float:
        row = await self.fetchrow(
            self.q("SELECT value FROM {s}counters WHERE key = ? AND window_start = ?"),
            key,
            window_start,
        )
        return float(row["value"]) if row else 0.0

    async def prune_counters(self, older_than: float) -> None:
        await self.execute(
            self.q("DELETE FROM {s}counters WHERE window_start < ?"), older_than, idempotent=True
        )
