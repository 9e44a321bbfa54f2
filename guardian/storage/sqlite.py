"""SQLite through aiosqlite: the default, one file 0600 in WAL mode.

One connection in autocommit mode serves the guardian's writes and reads, on aiosqlite's
thread. A lock gives a transaction that connection alone until it ends, so a statement from
another task never lands inside (or commits half of) someone else's transaction. A call's
start with no other call in flight is written through the same connection on the event
loop's thread, only while it is free (`_start_here`). A second connection only copies the
WAL back into the file (`sqlite_wal.py`).
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
from guardian.storage.sqlite_wal import WalCheckpointer

#: What SQLite (or its binding) raises for values it will not store: an int beyond 64 bits,
#: a constraint, text with a lone surrogate. Sending them again cannot help.
_REFUSED = (OverflowError, sqlite3.IntegrityError, sqlite3.DataError, UnicodeEncodeError)

# set while the current task holds the connection for a transaction
_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sealgate_sqlite_tx", default=False
)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A fence's outcome is only waited for, never used: take its error, so asyncio does
    not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


async def _begin(db: aiosqlite.Connection) -> None:
    """BEGIN IMMEDIATE: the write lock taken now, so another process (a second guardian
    migrating the same file) waits instead of failing later. Cancelled while it waits, the
    BEGIN still runs once aiosqlite's thread gets to it: a ROLLBACK queued behind it ends
    that transaction nobody holds (a no-op if the BEGIN failed)."""
    try:
        await db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise StorageError(f"sqlite: {exc}") from exc
    except asyncio.CancelledError:
        asyncio.ensure_future(db.rollback()).add_done_callback(_retrieved)
        raise


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
        self._insert_start = self.q(INSERT_RESERVATION)
        #: aiosqlite's connection itself, for a lone start written on the event loop's thread
        self._raw: sqlite3.Connection | None = None
        self._wal = WalCheckpointer(path)
        #: done once aiosqlite's thread has run what a cancelled task left queued
        self._fence: asyncio.Future[Any] | None = None

    async def open(self) -> None:
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        os.chmod(self.path, 0o600)
        try:
            self._db = await aiosqlite.Connection(self._connect, iter_chunk_size=64)
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
            await self._db.execute("PRAGMA wal_autocheckpoint=0")  # self._wal's instead
            await self._wal.open()
        except sqlite3.Error as exc:
            await self.close()  # its worker thread would otherwise keep the process alive
            raise StorageError(f"sqlite: cannot open {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        """aiosqlite's connector (run on its thread). check_same_thread=False: the event
        loop's thread writes a lone start through it while aiosqlite's is idle (the lock is
        free); SQLite's own mutex serializes the two threads' calls in any case.
        isolation_level=None: autocommit; transactions are explicit BEGIN ... COMMIT.
        timeout: the busy timeout, set before the first statement, so a guardian starting
        beside another one that is migrating waits instead of failing."""
        raw = sqlite3.connect(self.path, isolation_level=None, timeout=5.0, check_same_thread=False)
        self._raw = raw
        return raw

    def _start_here(self, values: tuple[Any, ...]) -> bool:
        """The start written on the event loop's thread, where aiosqlite's hand-off (a
        thread wake-up each way) costs more than the statement. It never waits on the loop
        for another process (busy timeout 0) or a checkpoint (`sqlite_wal.py`): when
        another process holds the write lock, False, and the caller takes the usual path,
        which waits."""
        raw = self._raw
        if raw is None or raw.in_transaction or not self._worker_idle():
            return False
        try:
            raw.execute("PRAGMA busy_timeout=0")
            try:
                raw.execute(self._insert_start, values)
            finally:
                raw.execute("PRAGMA busy_timeout=5000")
        except sqlite3.OperationalError as exc:
            # extended codes too (SQLITE_BUSY_SNAPSHOT is 517): the usual path waits
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise StorageError(f"sqlite: {exc}") from exc
        except _REFUSED as exc:
            raise StorageRefused(f"sqlite refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        self._wal.wrote()
        return True

    def _worker_idle(self) -> bool:
        """Whether aiosqlite's thread has nothing of ours left to run. A free lock says so,
        except after a holder was cancelled: aiosqlite cannot take back a statement already
        queued, so it may still run (or wait for another process's lock) after the lock is
        let go. Then `_fence`, a no-op queued behind it, says when it has."""
        return self._fence is None or self._fence.done()

    @asynccontextmanager
    async def _holding(self) -> AsyncIterator[None]:
        """The connection, for one task's statements on aiosqlite's thread."""
        async with self._lock:
            try:
                yield
            except asyncio.CancelledError:
                if self._db is not None:  # a no-op behind whatever was left queued
                    self._fence = asyncio.ensure_future(self._db.execute("SELECT 1"))
                    self._fence.add_done_callback(_retrieved)
                raise

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
        async with self._holding():
            token = _in_transaction.set(True)
            try:
                await _begin(db)
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
                self._wal.wrote()
            finally:
                _in_transaction.reset(token)

    async def execute(self, sql: str, *args: Any, idempotent: bool = False) -> int:
        db = self._conn()
        async with self._holding():
            try:
                cursor = await db.execute(sql, args)
            except _REFUSED as exc:
                raise StorageRefused(f"sqlite refused the values: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite: {exc}") from exc
            self._wal.wrote()
            return cursor.rowcount

    async def fetch(self, sql: str, *args: Any, idempotent: bool = False) -> list[Row]:
        db = self._conn()
        async with self._holding():
            try:
                # one hand-off to aiosqlite's thread; autocommit: a RETURNING write ends here
                rows = await db.execute_fetchall(sql, args)
            except sqlite3.Error as exc:
                raise StorageError(f"sqlite: {exc}") from exc
            self._wal.wrote()  # a write that returns rows, perhaps
        return [dict(row) for row in rows]

    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], *, idempotent: bool = False
    ) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def write_start(self, held: Reservation, *, alone: bool = False) -> None:
        """The call's start, committed before this returns, as on every backend. Starts that
        arrive while the connection is busy wait together and are committed in one
        transaction (group commit): under load one hand-off to SQLite's thread and one WAL
        append serve many calls instead of one each. A start `alone` (no other call in
        flight) on a free connection is written on the event loop's thread, without the
        hand-off; another lone start is one statement on aiosqlite's thread. A batch SQLite
        refuses is written again row by row, so only the refused start fails."""
        if not self._starts and not self._lock.locked():
            # the connection is free and no start waits: one statement
            self._conn()  # refuse inside a transaction, as execute() does
            values = reservation_values(held)
            if alone and self._start_here(values):
                return
            await self.execute(self._insert_start, *values)
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
        async with self._holding():
            batch, self._starts = self._starts, []  # every start that queued meanwhile
            self._wal.wrote()
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
        await _begin(db)
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
        self._raw = None  # no start on the loop's thread from here on
        await self._wal.close()
        if self._db is not None:
            await self._db.close()
            self._db = None

    def describe(self) -> str:
        return f"sqlite:{self.path}"
