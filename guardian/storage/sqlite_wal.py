"""The WAL of the guardian's SQLite file, copied back into the file by a connection of its own.

SQLite's own checkpoint (at 1,000 WAL pages) is off on the writing connection: it runs inside
whichever commit crosses the mark, two fsyncs long, while that commit holds the connection
(and every call's start waits) or, for a start written on the event loop's thread, blocks
the loop. Here a second connection, on its own thread, runs a passive checkpoint every
`CHECKPOINT_EVERY_S` while anything was written: in WAL mode it waits for no writer and no
writer waits for it, and as it changes no row, the writing connection keeps its page cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import aiosqlite

logger = logging.getLogger("sealgate.guardian.storage")

CHECKPOINT_EVERY_S = 0.25


class WalCheckpointer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._written = False  # since the last checkpoint

    async def open(self) -> None:
        self._connection = await aiosqlite.connect(self.path, timeout=5.0)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def wrote(self) -> None:
        """Something was committed: the next round checkpoints."""
        self._written = True

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Stopped, and its connection closed (before the writing one, whose close, the
        file's last, checkpoints whatever is left)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _run(self) -> None:
        failing = False  # logged once, until a checkpoint succeeds again
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            if not self._written or self._connection is None:
                continue
            self._written = False
            try:
                await self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception as exc:  # tried again after the next write (a full disk, ...)
                if not failing:
                    logger.warning("sqlite: the WAL checkpoint failed: %s", exc)
                failing = True
                continue
            if failing:
                logger.warning("sqlite: WAL checkpoints work again")
            failing = False
