"""The guardian's own database file (SQLite, 0600, WAL).

It holds the schema version and the usage ledger; users, sessions, tokens and audit move in
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
        await db.execute(
            "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY, ts TEXT NOT NULL,"
            " principal TEXT NOT NULL, tool TEXT NOT NULL, provider TEXT NOT NULL,"
            " model TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
            " cost_usd REAL, latency_ms REAL NOT NULL, outcome TEXT NOT NULL,"
            " fallback_path TEXT NOT NULL)"
        )
        cursor = await db.execute("SELECT MAX(version) FROM schema_version")
        row = await cursor.fetchone()
        if row is None or row[0] is None:
            await db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        await db.commit()
