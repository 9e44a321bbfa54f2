"""The usage ledger: one row per sealed call, written in batches.

Rows wait in memory at most `FLUSH_INTERVAL_S` or `FLUSH_ROWS` rows, then go to the guardian
database in one transaction; `close()` flushes what is left (the guardian calls it on
SIGTERM). No prompt text is stored. A row travels with the budget reservation it settles and
the audit entry of its ending, written in the same transaction (`Storage.write_ledger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from guardian.storage import Storage
from guardian.storage.base import AuditEntry, LedgerEntry, Reservation, StorageError, UsageRow

logger = logging.getLogger("sealgate.guardian.ledger")

FLUSH_INTERVAL_S = 0.1
FLUSH_ROWS = 100
MAX_PENDING_ROWS = 100_000


def fallback_json(path: list[dict[str, str]]) -> str:
    return json.dumps(path, separators=(",", ":"))


class UsageLedger:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._rows: list[LedgerEntry] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-ledger")

    def record(
        self,
        row: UsageRow,
        *,
        reservation: Reservation | None = None,
        audit: AuditEntry | None = None,
    ) -> None:
        """Queue one call's ending; never yields to the event loop (a cancelled call's
        handler records its ending here)."""
        self._rows.append(LedgerEntry(usage=row, reservation=reservation, audit=audit))
        # a shared budget counter holds the reserved maximum until this row is written
        if len(self._rows) >= FLUSH_ROWS or (reservation is not None and reservation.shared):
            self._wake.set()

    async def _run(self) -> None:
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
            await self.storage.write_ledger(rows)
        except StorageError as exc:
            logger.error("could not write %d usage rows (will retry): %s", len(rows), exc)
            self._rows[:0] = rows[-MAX_PENDING_ROWS:]
        except asyncio.CancelledError:
            # stopped mid-write (shutdown): the transaction rolled back, and a row committed
            # after all is skipped by its key, so `close()` writes them all again
            self._rows[:0] = rows
            raise

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
