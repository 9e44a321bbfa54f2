"""The primitives every repository of the guardian's tables is written against.

SQL uses `?` placeholders and `{s}` for the table prefix; a backend (`sqlite.py`,
`postgres.py`) rewrites both for its driver. Every value is passed as a parameter, never
formatted into the text.

Writes that belong together go through `transaction()`: every statement on one connection,
committed together or not at all. A write whose connection is lost mid-statement is never
retried blindly (it may have committed): only reads and statements marked idempotent are.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from guardian.storage.schema import MIGRATIONS

Row = dict[str, Any]


class StorageError(Exception):
    """The database could not do what was asked (unreachable, or a constraint failed)."""


class StorageRefused(StorageError):
    """The database refused these values (out of range, a constraint): sending them again
    cannot help, unlike a lost connection."""


class StorageUnreachable(StorageError):
    """The server did not answer (refused, timed out, starting up): trying later may help,
    unlike a malformed URL or refused credentials."""


class Transaction(abc.ABC):
    """Statements on one connection inside BEGIN ... COMMIT (ROLLBACK if the block raises)."""

    types: dict[str, str] = {}

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run one query; return its rows as dicts."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    def q(self, sql: str) -> str:
        return sql.format(**self.types)


class Database(abc.ABC):
    """A connection to the guardian's database and its dialect; subclasses (the backends,
    through `Storage`) provide them, repositories add the tables."""

    kind = "abstract"  # "sqlite" or "postgresql"
    types: dict[str, str] = {}

    # the primitives ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any, idempotent: bool = False) -> int:
        """Run one statement on its own; return the number of rows it changed. Retried after a
        lost connection only when `idempotent` (running it twice changes nothing more)."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any, idempotent: bool = False) -> list[Row]:
        """Run one query; return its rows as dicts. A SELECT is always idempotent."""

    @abc.abstractmethod
    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], *, idempotent: bool = False
    ) -> None:
        """Run one statement per row, in one transaction."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """`async with storage.transaction() as tx:` statements committed together; never
        retried (the caller knows whether its work may run twice)."""

    async def notify(self, channel: str, payload: str) -> None:
        """Tell every guardian on this database (PostgreSQL's NOTIFY); SQLite has one."""
        del channel, payload

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> Any:
        """A connection hearing `notify(channel, ...)`; PostgreSQL only."""
        del channel, on_notify
        raise StorageError("only PostgreSQL relays notifications between guardians")

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, with no credential in it."""

    @abc.abstractmethod
    async def _lock_migrations(self, tx: Transaction) -> None:
        """Hold a lock, until `tx` ends, that any other guardian migrating this database
        would also need."""

    @abc.abstractmethod
    def day_of(self, column: str) -> str:
        """An SQL expression: the UTC day (`YYYY-MM-DD`) of an epoch-seconds column."""

    async def fetchrow(self, sql: str, *args: Any, idempotent: bool = False) -> Row | None:
        rows = await self.fetch(sql, *args, idempotent=idempotent)
        return rows[0] if rows else None

    def q(self, sql: str) -> str:
        """The statement with this backend's table prefix and types filled in."""
        return sql.format(**self.types)

    # migrations ------------------------------------------------------------------------------
    async def migrate(self) -> int:
        """Bring the schema up to date in one transaction under a lock, so guardians starting
        together on one database apply each migration once."""
        async with self.transaction() as tx:
            await self._lock_migrations(tx)
            await tx.execute(
                tx.q(
                    "CREATE TABLE IF NOT EXISTS {s}schema_version (version INTEGER NOT NULL,"
                    " applied_at {real} NOT NULL)"
                )
            )
            row = await tx.fetchrow(tx.q("SELECT MAX(version) AS v FROM {s}schema_version"))
            current = int(row["v"]) if row and row["v"] is not None else 0
            if current > len(MIGRATIONS):
                raise StorageError(
                    f"the database is at schema version {current}, newer than this guardian"
                    f" knows ({len(MIGRATIONS)}); upgrade SealGate"
                )
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    await tx.execute(tx.q(statement))
                await tx.execute(
                    tx.q("INSERT INTO {s}schema_version (version, applied_at) VALUES (?, ?)"),
                    version,
                    time.time(),
                )
                current = version
        return current
