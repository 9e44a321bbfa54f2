"""Pick the backend: PostgreSQL when DATABASE_URL is set, else the SQLite file."""

from __future__ import annotations

import logging
from pathlib import Path

from guardian.storage.base import Storage
from guardian.storage.postgres import PostgresStorage
from guardian.storage.sqlite import SQLiteStorage

logger = logging.getLogger("sealgate.guardian.storage")


async def open_storage(database_url: str | None, sqlite_path: Path) -> Storage:
    """Open and migrate the guardian's database; raises `StorageError` if it cannot."""
    storage: Storage
    if database_url:
        storage = PostgresStorage(database_url)
        await storage.open()
    else:
        logger.info(
            "DATABASE_URL is not set: using SQLite at %s (PostgreSQL layer skipped)", sqlite_path
        )
        storage = SQLiteStorage(sqlite_path)
        await storage.open()
    version = await storage.migrate()
    logger.info("database %s at schema version %d", storage.describe(), version)
    return storage
