"""SQLite through aiosqlite: the default, one file 0600 in WAL mode.

One connection in autocommit mode serves the guardian. A lock gives a transaction that
connection alone until it ends, so a statement from another task never lands inside (or
commits half of) someone else's transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from guardian.storage.base import Row, Storage, StorageError, StorageRefused, Transaction
from guardian.storage.ledger import INSERT_RESERVATION, Reservation, reservation_values
from guardian.storage.schema import SQLITE_TYPES

#: What SQLite (or its binding) raises for values it will not store: an int beyond 64 bits,
#: a constraint, text with a lone surrogate. Sending them again cannot help.
_REFUSED = (OverflowError, sqlite3.IntegrityError, sqlite3.DataError, UnicodeEncodeError)

# set while the current task holds the connection for a transaction
_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sealgate_sqlite_tx", default=False
)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Hand a queued start its outcome, unless its caller has gone (cancelled)."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class _SQLiteTransaction(Transaction):
    types = SQLITE_TYPES

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self._db.execute(sql, args)
        except _REFUSED as exc:
            raise StorageRefused(f"sqlite refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        return cursor.rowcount

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            # one hand-off to aiosqlite's thread, not two (execute, then fetchall)
            rows = await self._db.execute_fetchall(sql, args)
        except _REFUSED as exc:
            raise StorageRefused(f"sqlite refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        return [dict(row) for row in rows]

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._db.executemany(sql, rows)
        except _REFUSED as exc:
            raise StorageRefused(f"sqlite refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc


class SQLiteStorage(Storage):
    kind = "sqlite"
    types = SQLITE_TYPES

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        #: Call starts waiting for the connection, written together (`write_start`).
        self._starts: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._start_writers: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        os.chmod(self.path, 0o600)
        try:
            # isolation_level=None: autocommit; transactions are explicit BEGIN ... COMMIT.
            # timeout: the busy timeout, set before the first statement, so a guardian
            # starting beside another one that is migrating waits instead of failing.
            self._db = await aiosqlite.connect(self.path, isolation_level=None, timeout=5.0)
            self._db.row_factory = sqlite3.Row
            await self._db.execute("PRAGMA busy_timeout=5000")
            # Switching to WAL needs the file to itself and does not wait on the busy
            # timeout while another guardian migrates it: try again for a few seconds.
            for _ in range(50):
                try:
                    await self._db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    await asyncio.sleep(0.1)
            await self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            await self.close()  # its worker thread would otherwise keep the process alive
            raise StorageError(f"sqlite: cannot open {self.path}: {exc}") from exc

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("The SQLite storage is not open; call open() first.")
        if _in_transaction.get():
            raise RuntimeError(
                "A storage method was called inside storage.transaction(); use the"
                " transaction's own execute/fetch there (the connection is held by it)."
            )
        return self._db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        db = self._conn()
        async with self._lock:
            token = _in_transaction.set(True)
            try:
                try:
                    # IMMEDIATE: take the write lock now, so another process (a second
                    # guardian migrating the same file) waits instead of failing later
                    await db.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise StorageError(f"sqlite: {exc}") from exc
                try:
                    yield _SQLiteTransaction(db)
                except BaseException:
                    await db.rollback()
                    raise
                try:
                    await db.commit()
                except sqlite3.Error as exc:
                    await db.rollback()
                    raise StorageError(f"sqlite: {exc}") from exc
            finally:
                _in_transaction.reset(token)

    async def execute(self, sql: str, *args: Any, idempotent: bool = False) -> int:
        db = self._conn()
        async with self._lock:
            try:
                cursor = await db.execute(sql, args)
            except _REFUSED as exc:
                raise StorageRefused(f"sqlite refused the values: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite: {exc}") from exc
            return cursor.rowcount

    async def fetch(self, sql: str, *args: Any, idempotent: bool = False) -> list[Row]:
        db = self._conn()
        async with self._lock:
            try:
                # one hand-off to aiosqlite's thread; autocommit: a RETURNING write ends here
                rows = await db.execute_fetchall(sql, args)
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite: {exc}") from exc
        return [dict(row) for row in rows]

    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], *, idempotent: bool = False
    ) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def write_start(self, held: Reservation) -> None:
        """The call's start, committed before this returns, as on every backend. Starts that
        arrive while the connection is busy wait together and are committed in one
        transaction (group commit): under load one hand-off to SQLite's thread and one WAL
        append serve many calls instead of one each. A lone start is one statement, as
        before. A batch SQLite refuses is written again row by row, so only the refused
        start fails."""
        if not self._starts and not self._lock.locked():
            # the connection is free and no start waits: one statement, no hand-off
            await self.execute(self.q(INSERT_RESERVATION), *reservation_values(held))
            return
        self._conn()  # refuse inside a transaction, as execute() does
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._starts.append((reservation_values(held), future))
        if len(self._starts) == 1:
            writer = asyncio.get_running_loop().create_task(self._write_starts())
            self._start_writers.add(writer)
            writer.add_done_callback(self._start_writers.discard)
        await future

    async def _write_starts(self) -> None:
        sql = self.q(INSERT_RESERVATION)
        async with self._lock:
            batch, self._starts = self._starts, []  # every start that queued meanwhile
            try:
                if len(batch) == 1:
                    await self._db_execute(sql, batch[0][0])
                else:
                    try:
                        await self._insert_together(sql, [values for values, _ in batch])
                    except StorageRefused:
                        for values, future in batch:
                            _settle(future, await self._attempt(sql, values))
                        return
            except (StorageError, sqlite3.Error, RuntimeError, ValueError) as exc:
                error = exc if isinstance(exc, StorageError) else StorageError(f"sqlite: {exc}")
                for _, future in batch:
                    _settle(future, error)
                return
            for _, future in batch:
                _settle(future, None)

    async def _db_execute(self, sql: str, values: Sequence[Any]) -> None:
        try:
            await self._conn().execute(sql, values)
        except _REFUSED as exc:
            raise StorageRefused(f"sqlite refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc

    async def _attempt(self, sql: str, values: Sequence[Any]) -> StorageError | None:
        try:
            await self._db_execute(sql, values)
        except StorageError as exc:
            return exc
        return None

    async def _insert_together(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction for many starts (the caller holds the lock)."""
        db = self._conn()
        try:
            await db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        try:
            await db.executemany(sql, rows)
            await db.commit()
        except BaseException as exc:
            await db.rollback()
            if isinstance(exc, _REFUSED):
                raise StorageRefused(f"sqlite refused the values: {exc}") from exc
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"sqlite: {exc}") from exc
            raise

    async def _lock_migrations(self, tx: Transaction) -> None:
        """BEGIN IMMEDIATE already holds the file's write lock."""

    def day_of(self, column: str) -> str:
        return f"strftime('%Y-%m-%d', {column}, 'unixepoch')"

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def describe(self) -> str:
        return f"sqlite:{self.path}"
