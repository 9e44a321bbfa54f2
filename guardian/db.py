"""The guardian's own database file (SQLite, 0600, WAL).

The walking skeleton only creates it with its schema version, so that its place, mode and
ownership are real from the first start; users, sessions, tokens, audit and usage move in
with the storage layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import aiosqlite

SCHEMA_VERSION = 1


async def ensure_database(path: Path) -> None:
    """Create the database file 0600 if missing and record the schema version."""
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        cursor = await db.execute("SELECT MAX(version) FROM schema_version")
        row = await cursor.fetchone()
        if row is None or row[0] is None:
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        await db.commit()
