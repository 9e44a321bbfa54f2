"""The usage ledger: one row per sealed call, written in batches.

Rows wait in memory at most `FLUSH_INTERVAL_S` or `FLUSH_ROWS` rows, then go to the guardian
database in one transaction; `close()` flushes what is left (the guardian calls it on
SIGTERM). No prompt text is stored. A row travels with the budget reservation it settles and
the audit entry of its ending, written in the same transaction (`Storage.write_ledger`).

The queue is bounded (`MAX_PENDING_ROWS`): while the database is away rows wait and are
retried (their idempotency keys make a retry safe); past the bound new rows are dropped and
counted, which `status` and `/metrics` show. A dropped row's reservation stays in storage and
is billed in full at the next start: money fails closed.

A row the database refuses (a value out of range, say: usage figures come from providers, and
even bounded ones pass through here) is isolated: the batch is written again row by row, the
refused row is left out, counted (`status` shows it), logged and audited, and every other row
is written. Its reservation stays, so the call is billed its maximum at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from guardian.storage import Storage
from guardian.storage.base import (
    AuditEntry,
    LedgerEntry,
    Reservation,
    StorageError,
    StorageRefused,
    UsageRow,
)

logger = logging.getLogger("sealgate.guardian.ledger")

FLUSH_INTERVAL_S = 0.1
#: A batch holds SQLite's one connection for its transaction (about 6 ms for 100 rows), and
#: the calls' starts that arrive meanwhile wait for it: 50 rather than 100 took 1.8 ms off
#: `/v1`'s p99 at 16 requests at once, its req/s unchanged (bench/RESULTS.md, 2026-12-08).
FLUSH_ROWS = 50
MAX_PENDING_ROWS = 100_000


def fallback_json(path: list[dict[str, str]]) -> str:
    return json.dumps(path, separators=(",", ":"))


class UsageLedger:
    def __init__(self, storage: Storage, capacity: int = MAX_PENDING_ROWS) -> None:
        self.storage = storage
        self.capacity = capacity
        self.dropped = 0
        self.refused = 0  # rows the database would not store, isolated and audited
        self.last_refused = ""  # when and what, for `status`
        self._rows: list[LedgerEntry] = []
        self._wake = asyncio.Event()
        # one write at a time: a flush that finds the queue empty while the writer's batch
        # is still in its transaction waits for it, so "flushed" means "in the database"
        self._writing = asyncio.Lock()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def stats(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "pending": self.pending,
            "capacity": self.capacity,
            "dropped": self.dropped,
            "refused": self.refused,
        }
        if self.last_refused:
            figures["last_refused"] = self.last_refused
        return figures

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
        counted = reservation is not None and reservation.shared and reservation.counted
        if len(self._rows) >= FLUSH_ROWS or counted:
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
        async with self._writing:
            await self._write_queued()

    async def _write_queued(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        try:
            await self.storage.write_ledger(rows)
        except StorageRefused:
            await self._row_by_row(rows)
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

    async def _row_by_row(self, rows: list[LedgerEntry]) -> None:
        """A batch the database refused: each row on its own, so one bad row blocks none."""
        for index, entry in enumerate(rows):
            try:
                await self.storage.write_ledger([entry])
            except StorageRefused as exc:
                await self._isolate(entry, exc)
            except StorageError as exc:
                logger.error("could not write %d usage rows (will retry): %s", len(rows), exc)
                rest = rows[index:]
                room = self.capacity - len(self._rows)
                self._rows[:0] = rest[:room]
                self.dropped += max(0, len(rest) - room)
                return

    async def _isolate(self, entry: LedgerEntry, exc: StorageRefused) -> None:
        row = entry.usage
        self.refused += 1
        what = f"{row.tool} call of {row.principal!r} ({row.provider}/{row.model}, {row.outcome})"
        self.last_refused = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {what}"
        reason = str(exc)[:300]
        logger.error("the database refused the usage row of a %s; left out: %s", what, reason)
        detail = (
            f"the usage row of this {row.tool} call ({row.provider}/{row.model}, outcome"
            f" {row.outcome}) was refused by the database and left out ({reason});"
            + (
                " its reservation stays: the next start bills the call's maximum"
                if entry.reservation is not None
                else " the call is not billed"
            )
        )
        try:
            await self.storage.add_audit(
                row.principal, "ledger.refused", "refused", detail=detail, tool=row.tool
            )
        except StorageError as audit_exc:
            logger.error("could not audit the refused usage row: %s", audit_exc)

    async def close(self) -> None:
        await self.flush()
