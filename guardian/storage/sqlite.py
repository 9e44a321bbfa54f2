"""SQLite through aiosqlite: the default, one file 0600 in WAL mode."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from guardian.storage.base import Row, Storage, StorageError
from guardian.storage.schema import SQLITE_TYPES


class SQLiteStorage(Storage):
    kind = "sqlite"
    types = SQLITE_TYPES

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        os.chmod(self.path, 0o600)
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = sqlite3.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("The SQLite storage is not open; call open() first.")
        return self._db

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self._conn().execute(sql, args)
            await self._conn().commit()
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        return cursor.rowcount

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            cursor = await self._conn().execute(sql, args)
            rows = await cursor.fetchall()
            if not sql.lstrip().upper().startswith("SELECT"):
                await self._conn().commit()  # UPDATE/INSERT ... RETURNING
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc
        return [dict(row) for row in rows]

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._conn().executemany(sql, rows)
            await self._conn().commit()
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def describe(self) -> str:
        return f"sqlite:{self.path}"
