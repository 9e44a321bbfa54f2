"""A call's start written on the event loop's thread when no other call is in flight, and
the WAL checkpointed on a connection of its own (guardian/storage/sqlite.py): the start
lands before `reserve` returns, a refused one still fails alone, the connection's settings
are put back, and what is written reaches the database file without SQLite's own
checkpoint. `Limits` says which starts are alone."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.limits import Limits
from guardian.storage import Storage, open_storage
from guardian.storage.base import StorageRefused
from guardian.storage.ledger import Reservation
from protocol.errors import BudgetExceeded
from tests.call_starts import call_start


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_storage(None, tmp_path / "g.db")
    try:
        yield opened
    finally:
        await opened.close()


async def _pragma(store: Storage, name: str) -> int:
    rows = await store.fetch(f"PRAGMA {name}")
    return int(next(iter(rows[0].values())))


async def test_a_start_alone_is_written_on_the_loops_thread_and_committed(
    store: Storage, tmp_path: Path
) -> None:
    threads: list[tuple[int, str]] = []
    db = store._db  # type: ignore[attr-defined]
    await db.set_trace_callback(lambda sql: threads.append((threading.get_ident(), sql)))
    held = call_start()
    assert await store.reserve(held, None, alone=True) is None
    await db.set_trace_callback(None)
    inserts = [ident for ident, sql in threads if sql.startswith("INSERT INTO reservations")]
    assert inserts == [threading.get_ident()]  # no hand-off to aiosqlite's thread
    with sqlite3.connect(tmp_path / "g.db") as other:  # another process sees it at once
        (count,) = other.execute("SELECT count(*) FROM reservations WHERE id = ?", (held.id,))
    assert count == (1,)
    assert await _pragma(store, "busy_timeout") == 5000  # put back for aiosqlite's thread


async def test_a_start_not_alone_goes_through_aiosqlites_thread(store: Storage) -> None:
    threads: list[tuple[int, str]] = []
    db = store._db  # type: ignore[attr-defined]
    await db.set_trace_callback(lambda sql: threads.append((threading.get_ident(), sql)))
    await store.reserve(call_start(), None, alone=False)
    await db.set_trace_callback(None)
    inserts = [ident for ident, sql in threads if sql.startswith("INSERT INTO reservations")]
    assert len(inserts) == 1 and inserts[0] != threading.get_ident()


async def test_a_refused_start_alone_fails_alone_and_leaves_the_settings(store: Storage) -> None:
    first = call_start()
    await store.reserve(first, None, alone=True)
    with pytest.raises(StorageRefused):
        await store.reserve(dataclasses.replace(call_start(), id=first.id), None, alone=True)
    with pytest.raises(StorageRefused):  # an int beyond 64 bits
        await store.reserve(dataclasses.replace(call_start(), input_tokens=2**70), None, alone=True)
    assert await _pragma(store, "busy_timeout") == 5000
    assert await _pragma(store, "wal_autocheckpoint") == 0  # the checkpointer's job
    await store.reserve(call_start(), None, alone=True)
    rows = await store.fetch(store.q("SELECT id FROM {s}reservations"))
    assert len(rows) == 2


async def test_writes_reach_the_database_file_through_the_checkpointer(
    store: Storage, tmp_path: Path
) -> None:
    """SQLite's own checkpoint is off; without the checkpointer's, the rows would stay in
    the WAL for good (the file read alone, `immutable=1`, ignores the WAL)."""
    starts = [call_start() for _ in range(5)]
    for held in starts:
        await store.reserve(held, None, alone=True)
    deadline = time.monotonic() + 5
    found: set[str] = set()
    while time.monotonic() < deadline and len(found) < 5:
        await asyncio.sleep(0.1)
        uri = f"file:{tmp_path / 'g.db'}?immutable=1"
        with sqlite3.connect(uri, uri=True) as file_only:
            try:
                found = {row[0] for row in file_only.execute("SELECT id FROM reservations")}
            except sqlite3.OperationalError:  # the schema itself is not in the file yet
                continue
    assert found == {held.id for held in starts}


async def test_close_stops_the_checkpointer(tmp_path: Path) -> None:
    opened = await open_storage(None, tmp_path / "g.db")
    await opened.reserve(call_start(), None, alone=True)
    wal = opened._wal  # type: ignore[attr-defined]
    assert wal.running
    await opened.close()
    assert not wal.running
    assert not (tmp_path / "g.db-wal").exists()  # the last connection closed checkpoints it


class _Recording:
    """A storage that records what `Limits` asks of it."""

    kind = "sqlite"

    def __init__(self) -> None:
        self.alone: list[bool] = []

    async def reserve(
        self, held: Reservation, budget: float | None, *, alone: bool = False
    ) -> float | None:
        self.alone.append(alone)
        await asyncio.sleep(0)
        return None


async def _reserve(limits: Limits, budget: float | None = None, amount: float = 0.0) -> Reservation:
    return await limits.reserve("p", budget, amount, tool="chat", provider="x", model="m")


async def test_limits_say_a_start_is_alone_only_with_no_other_call_in_flight() -> None:
    storage = _Recording()
    limits = Limits(storage)  # type: ignore[arg-type]
    first = await _reserve(limits)
    second = await _reserve(limits)
    limits.settle(first, 0.0)
    third = await _reserve(limits)
    limits.settle(second, 0.0)
    limits.settle(third, 0.0)
    await asyncio.gather(*(_reserve(limits) for _ in range(3)))
    assert storage.alone == [True, False, False, True, False, False]
    assert limits.in_flight == 3


async def test_a_refused_or_cancelled_reservation_is_not_counted_in_flight() -> None:
    storage = _Recording()
    limits = Limits(storage)  # type: ignore[arg-type]
    with pytest.raises(BudgetExceeded):
        await _reserve(limits, budget=1.0, amount=2.0)
    task = asyncio.create_task(_reserve(limits))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limits.in_flight == 0
    await _reserve(limits)
    assert storage.alone[-1] is True


async def test_the_writing_connections_settings(store: Storage) -> None:
    """WAL, no fsync per commit, no checkpoint of its own."""
    rows = await store.fetch("PRAGMA journal_mode")
    assert rows[0]["journal_mode"] == "wal"
    assert await _pragma(store, "synchronous") == 1  # NORMAL
    assert await _pragma(store, "wal_autocheckpoint") == 0
    assert await _pragma(store, "busy_timeout") == 5000
