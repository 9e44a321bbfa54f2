"""The usage ledger: one row per sealed call, written in batches.

Rows wait in memory at most `FLUSH_INTERVAL_S` or `FLUSH_ROWS` rows, then go to the guardian
database in one transaction; `close()` flushes what is left (the guardian calls it on
SIGTERM). No prompt text is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import astuple, dataclass
from pathlib import Path

import aiosqlite

logger = logging.getLogger("sealgate.guardian.ledger")

FLUSH_INTERVAL_S = 0.1
FLUSH_ROWS = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    ts: str
    principal: str
    tool: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_ms: float
    outcome: str  # "ok" or an error code
    fallback_path: str  # JSON list of {"provider", "error"}


INSERT = (
    "INSERT INTO usage (ts, principal, tool, provider, model, input_tokens, output_tokens,"
    " cost_usd, latency_ms, outcome, fallback_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def fallback_json(path: list[dict[str, str]]) -> str:
    return json.dumps(path, separators=(",", ":"))


class UsageLedger:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._rows: list[UsageRow] = []
        self._wake = asyncio.Event()
        self._db: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._db = await aiosqlite.connect(self.db_path)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, row: UsageRow) -> None:
        self._rows.append(row)
        if len(self._rows) >= FLUSH_ROWS:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._rows or self._db is None:
            return
        rows, self._rows = self._rows, []
        try:
            await self._db.executemany(INSERT, [astuple(row) for row in rows])
            await self._db.commit()
        except (aiosqlite.Error, OSError) as exc:
            logger.error("could not write %d usage rows: %s", len(rows), exc)
            self._rows[:0] = rows[-10_000:]  # keep them for the next try, bounded

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
        if self._db is not None:
            await self._db.close()
            self._db = None
