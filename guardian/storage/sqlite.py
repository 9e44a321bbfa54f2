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
from guardian.storage.schema import SQLITE_TYPES

#: What SQLite (or its binding) raises for values it will not store: an int beyond 64 bits,
#: a constraint, text with a lone surrogate. Sending them again cannot help.
_REFUSED = (OverflowError, sqlite3.IntegrityError, sqlite3.DataError, UnicodeEncodeError)

# set while the current task holds the connection for a transaction
_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sealgate_sqlite_tx", default=False
)


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
            cursor = await self._db.execute(sql, args)
            rows = await cursor.fetchall()
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
                cursor = await db.execute(sql, args)
                rows = await cursor.fetchall()  # autocommit: a RETURNING write ends here
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite: {exc}") from exc
        return [dict(row) for row in rows]

    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], *, idempotent: bool = False
    ) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

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
