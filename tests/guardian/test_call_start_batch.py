"""Call starts on SQLite: concurrent starts share one commit (group commit), each caller
still returns only once its own start is committed, and a start SQLite refuses fails alone."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.storage import Storage, open_storage
from guardian.storage.base import StorageRefused
from tests.call_starts import call_start


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(None, tmp_path / "g.db")
    try:
        yield store
    finally:
        await store.close()


def _commits(statements: list[str]) -> int:
    """Transactions SQLite committed: explicit COMMITs plus statements outside BEGIN."""
    commits, inside = 0, False
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper()
        if head == "BEGIN":
            inside = True
        elif head == "COMMIT":
            inside = False
            commits += 1
        elif head == "ROLLBACK":
            inside = False
        elif not inside and head == "INSERT":
            commits += 1
    return commits


async def test_concurrent_starts_share_commits_and_all_land(sqlite_store: Storage) -> None:
    statements: list[str] = []
    db = sqlite_store._db  # type: ignore[attr-defined]
    await db.set_trace_callback(statements.append)
    starts = [call_start() for _ in range(40)]
    await asyncio.gather(*(sqlite_store.reserve(held, None) for held in starts))
    await db.set_trace_callback(None)
    rows = await sqlite_store.fetch(sqlite_store.q("SELECT id FROM {s}reservations"))
    assert {row["id"] for row in rows} == {held.id for held in starts}
    # one start each would be 40 commits; together they take a handful
    assert _commits(statements) <= 4, statements[:10]


async def test_a_lone_start_is_committed_when_reserve_returns(
    sqlite_store: Storage, tmp_path: Path
) -> None:
    held = call_start()
    assert await sqlite_store.reserve(held, None) is None
    # another connection (another process, after a SIGKILL) sees it at once
    with sqlite3.connect(tmp_path / "g.db") as other:
        (count,) = other.execute("SELECT count(*) FROM reservations WHERE id = ?", (held.id,))
    assert count == (1,)


async def test_a_refused_start_fails_alone_in_its_batch(sqlite_store: Storage) -> None:
    first = call_start()
    await sqlite_store.reserve(first, None)
    others = [call_start() for _ in range(5)]
    duplicate = dataclasses.replace(call_start(), id=first.id)  # the primary key is taken
    outcomes = await asyncio.gather(
        *(sqlite_store.reserve(held, None) for held in [*others[:3], duplicate, *others[3:]]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], StorageRefused)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [None] * 5
    rows = await sqlite_store.fetch(sqlite_store.q("SELECT id FROM {s}reservations"))
    assert {row["id"] for row in rows} == {first.id, *(held.id for held in others)}


async def test_a_cancelled_caller_does_not_stop_the_others(sqlite_store: Storage) -> None:
    starts = [call_start() for _ in range(6)]
    tasks = [asyncio.create_task(sqlite_store.reserve(held, None)) for held in starts]
    await asyncio.sleep(0)
    tasks[2].cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 5
    rows = await sqlite_store.fetch(sqlite_store.q("SELECT id FROM {s}reservations"))
    assert {held.id for i, held in enumerate(starts) if i != 2} <= {row["id"] for row in rows}
