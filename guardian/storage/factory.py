"""Pick the backend: PostgreSQL when DATABASE_URL is set, else the SQLite file."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from guardian.storage.base import Storage, StorageError, StorageUnreachable
from guardian.storage.postgres import PostgresStorage
from guardian.storage.sqlite import SQLiteStorage

logger = logging.getLogger("sealgate.guardian.storage")

DEFAULT_CONNECT_WAIT_S = 30.0
_RETRY_MAX_S = 5.0


async def _connect_postgres(database_url: str, connect_wait_s: float) -> PostgresStorage:
    """Connect, trying again while the server does not answer, for up to `connect_wait_s`
    (a database starting beside the guardian); a refusal or a bad URL fails at once."""
    deadline = time.monotonic() + connect_wait_s
    attempt = 0
    while True:
        attempt += 1
        storage = PostgresStorage(database_url)
        remaining = deadline - time.monotonic()
        try:
            await storage.open(connect_timeout=max(1.0, min(10.0, remaining)))
        except StorageUnreachable as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageError(
                    f"{exc}; gave up after {attempt} tries in {connect_wait_s:g} s"
                    " ([HUB] db_connect_wait_s)"
                ) from exc
            delay = min(0.5 * 2 ** (attempt - 1), _RETRY_MAX_S, remaining)
            logger.warning("database try %d: %s; trying again in %.1f s", attempt, exc, delay)
            await asyncio.sleep(delay)
            continue
        return storage


async def open_storage(
    database_url: str | None,
    sqlite_path: Path,
    *,
    connect_wait_s: float = DEFAULT_CONNECT_WAIT_S,
) -> Storage:
    """Open and migrate the guardian's database; raises `StorageError` if it cannot."""
    storage: Storage
    if database_url:
        storage = await _connect_postgres(database_url, connect_wait_s)
    else:
        logger.info(
            "DATABASE_URL is not set: using SQLite at %s (PostgreSQL layer skipped)", sqlite_path
        )
        storage = SQLiteStorage(sqlite_path)
        await storage.open()
    try:
        version = await storage.migrate()
    except BaseException:
        await storage.close()
        raise
    logger.info("database %s at schema version %d", storage.describe(), version)
    return storage
