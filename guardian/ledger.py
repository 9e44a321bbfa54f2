"""The usage ledger: one row per sealed call, written in batches.

Rows wait in memory at most `FLUSH_INTERVAL_S` or `FLUSH_ROWS` rows, then go to the guardian
database in one transaction; `close()` flushes what is left (the guardian calls it on
SIGTERM). No prompt text is stored. The queue is bounded (`MAX_PENDING_ROWS`): while the
database is away rows wait and are retried (their idempotency keys make a retry safe); past
the bound new rows are dropped and counted, which `status` and `/metrics` show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from guardian.storage import Storage
from guardian.storage.base import StorageError, UsageRow

logger = logging.getLogger("sealgate.guardian.ledger")

FLUSH_INTERVAL_S = 0.1
FLUSH_ROWS = 100
MAX_PENDING_ROWS = 100_000


def fallback_json(path: list[dict[str, str]]) -> str:
    return json.dumps(path, separators=(",", ":"))


class UsageLedger:
    def __init__(self, storage: Storage, capacity: int = MAX_PENDING_ROWS) -> None:
        self.storage = storage
        self.capacity = capacity
        self.dropped = 0
        self._rows: list[UsageRow] = []
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def stats(self) -> dict[str, Any]:
        return {"pending": self.pending, "capacity": self.capacity, "dropped": self.dropped}

    def record(self, row: UsageRow) -> None:
        if len(self._rows) >= self.capacity:
            if self.dropped == 0:
                logger.error(
                    "usage ledger full (%d rows waiting for the database): dropping new rows",
                    self.capacity,
                )
            self.dropped += 1
            return
        self._rows.append(row)
        if len(self._rows) >= FLUSH_ROWS:
            self._wake.set()

    async def run(self) -> None:
        """The writer loop (run it supervised: see guardian.tasks)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        try:
            await self.storage.add_usage(rows)
        except StorageError as exc:
            logger.error("could not write %d usage rows (will retry): %s", len(rows), exc)
            room = self.capacity - len(self._rows)
            self._rows[:0] = rows[:room]
            self.dropped += max(0, len(rows) - room)
        except BaseException:
            self._rows[:0] = rows  # a bug or a cancel: keep the rows for the next flush
            raise

    async def close(self) -> None:
        await self.flush()
