"""The usage ledger: one row per sealed call, written in batches.

Rows wait in memory at most `FLUSH_INTERVAL_S` or `FLUSH_ROWS` rows, then go to the guardian
database in one transaction; `close()` flushes what is left (the guardian calls it on
SIGTERM). No prompt text is stored. A row travels with the budget reservation it settles and
the audit entry of its ending, written in the same transaction (`Storage.write_ledger`).

The queue is bounded (`MAX_PENDING_ROWS`): while the database is away rows wait and are
retried (their idempotency keys make a retry safe); past the bound new rows are dropped and
counted, which `status` and `/metrics` show. A dropped row's reservation stays in storage and
is billed in full at the next start: money fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from guardian.storage import Storage
from guardian.storage.base import AuditEntry, LedgerEntry, Reservation, StorageError, UsageRow

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
        self._rows: list[LedgerEntry] = []
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def stats(self) -> dict[str, Any]:
        return {"pending": self.pending, "capacity": self.capacity, "dropped": self.dropped}

    def record(
        self,
        row: UsageRow,
        *,
        reservation: Reservation | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        """Queue one call's ending; never yields to the event loop (a cancelled call's
        handler records its ending here)."""
        if len(self._rows) >= self.capacity:
            if self.dropped == 0:
                logger.error(
                    "usage ledger full (%d rows waiting for the database): dropping new rows",
                    self.capacity,
                )
            self.dropped += 1
            return
        self._rows.append(LedgerEntry(usage=row, reservation=reservation, audit=audit))
        # a shared budget counter holds the reserved maximum until this row is written
        if len(self._rows) >= FLUSH_ROWS or (reservation is not None and reservation.shared):
            self._wake.set()

    async def run(self) -> None:
        """The writer loop (run it supervised: see guardian.tasks)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_INTERVAL_S):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        try:
            await self.storage.write_ledger(rows)
        except StorageError as exc:
            logger.error("could not write %d usage rows (will retry): %s", len(rows), exc)
            room = self.capacity - len(self._rows)
            self._rows[:0] = rows[:room]
            self.dropped += max(0, len(rows) - room)
        except BaseException:
            # a bug, or stopped mid-write (shutdown): the transaction rolled back, and a row
            # committed after all is skipped by its key, so the next flush writes them all
            self._rows[:0] = rows
            raise

    async def close(self) -> None:
        await self.flush()
