"""SQLite has one serialized writer: no request fails and no audit row is lost under load,
and a write lock held from outside never stalls the guardian's event loop.

The attack (or just a busy morning): 20 parallel logins, plus tokens in use, against the
default SQLite store. Statements of concurrent requests used to interleave on the shared
connection, so commits failed with "cannot commit transaction - SQL statements in progress":
seven 500s, and those audit rows were gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardian.storage import open_storage
from tests.call_starts import call_start
from tests.helpers import EXAMPLE_CONFIG, Stack
from tests.security.stackdb import Backend, ctl

USERS = 20


async def test_parallel_logins_all_answer_and_all_are_audited(
    stack_factory: Callable[..., Stack],
) -> None:
    config = EXAMPLE_CONFIG.read_text().replace(
        '# login_attempts_per_min = "20"', 'login_attempts_per_min = "1000"'
    )
    stack = stack_factory(config_text=config)
    for index in range(USERS):
        ctl(stack, "users", "add", f"user{index}", stdin=f"password number {index}\n")
    token = ctl(stack, "tokens", "issue", "--user", "user0")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:

        async def login(index: int, password: str) -> int:
            body = {"username": f"user{index}", "password": password}
            return (await client.post("/auth/login", json=body)).status_code

        async def use_token() -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return (await client.get("/v1/models", headers=headers)).status_code

        for _ in range(2):
            answers = await asyncio.gather(
                *(login(i, f"password number {i}") for i in range(USERS)),
                *(login(i, "a wrong password") for i in range(USERS)),
                *(use_token() for _ in range(USERS)),
            )
            assert answers == [200] * USERS + [401] * USERS + [200] * USERS
    audit = Backend("sqlite").rows(
        stack, "SELECT outcome, COUNT(*) AS n FROM {s}audit WHERE action = 'login' GROUP BY outcome"
    )
    assert {row["outcome"]: row["n"] for row in audit} == {"ok": 2 * USERS, "refused": 2 * USERS}
    assert "SQL statements in progress" not in stack.logs()
    assert "Traceback" not in stack.logs()


async def test_a_held_write_lock_never_stalls_the_event_loop(tmp_path: Path) -> None:
    """Another process holds the database's write lock (a sqlite3 shell left inside a
    transaction, a second guardian migrating): a call's start alone, which is written on
    the event loop's thread when it can be, must not wait there for the lock. It waits on
    aiosqlite's thread instead, the loop keeps turning, and the start lands once the lock
    is let go."""
    store = await open_storage(None, tmp_path / "g.db")
    try:
        other = sqlite3.connect(tmp_path / "g.db", isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")
        held = call_start()
        start, watch = await _watched(store.reserve(held, None, alone=True))
        await asyncio.sleep(0.4)
        assert not start.done()  # waiting for the lock, not on the loop
        other.execute("COMMIT")
        await asyncio.wait_for(start, 5)
        other.close()
        longest = await watch
        assert longest < 0.2, longest
        rows = await store.fetch(store.q("SELECT id FROM {s}reservations"))
        assert [row["id"] for row in rows] == [held.id]
    finally:
        await store.close()


async def _watched(
    write: Coroutine[Any, Any, float | None],
) -> tuple[asyncio.Task[float | None], asyncio.Task[float]]:
    """`write` started as a task, and the event loop's longest pause from before it starts
    to its end (a write that blocks the loop's thread in its first step is seen too)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watch = asyncio.create_task(_loop_gaps(done))
    await asyncio.sleep(0.02)
    task = asyncio.create_task(write)
    task.add_done_callback(lambda _: done.set_result(None))
    return task, watch


async def _loop_gaps(until: asyncio.Future[None]) -> float:
    """The event loop's longest pause while `until` is pending."""
    longest, last = 0.0, time.monotonic()
    while not until.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


async def test_a_cancelled_statement_still_queued_keeps_lone_starts_off_the_loop(
    tmp_path: Path,
) -> None:
    """A call cancelled while its start waits for a lock held elsewhere lets go of the
    connection, but aiosqlite still runs (and waits on) that statement: the next start
    alone must not be written on the loop's thread meanwhile, where it would wait on the
    same connection and stall the loop."""
    store = await open_storage(None, tmp_path / "g.db")
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(store.reserve(call_start(), None, alone=False))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        alone = call_start()
        start, watch = await _watched(store.reserve(alone, None, alone=True))
        await asyncio.sleep(0.4)
        other.execute("COMMIT")
        await asyncio.wait_for(start, 5)
        assert await watch < 0.2
        rows = await store.fetch(store.q("SELECT id FROM {s}reservations"))
        assert alone.id in {row["id"] for row in rows}
    finally:
        other.close()
        await store.close()


async def test_a_transaction_cancelled_while_it_begins_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    """Cancelled while its BEGIN waits for a lock held elsewhere, a transaction's BEGIN
    still runs later: it must be rolled back, so that no later start is written into a
    transaction nobody will commit (and lost)."""
    store = await open_storage(None, tmp_path / "g.db")
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with store.transaction() as tx:
                await tx.execute(store.q("DELETE FROM {s}reservations"))

        task = asyncio.create_task(write())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other.execute("COMMIT")
        alone = call_start()
        await asyncio.wait_for(store.reserve(alone, None, alone=True), 6)
        await store.fetch("SELECT 1")  # behind the fence and the rollback
        assert not store._raw.in_transaction  # type: ignore[attr-defined]
        (count,) = other.execute("SELECT count(*) FROM reservations WHERE id = ?", (alone.id,))
        assert count == (1,)  # committed, seen by another connection
    finally:
        other.close()
        await store.close()
