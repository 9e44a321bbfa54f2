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
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from guardian.storage import open_storage
from guardian.storage.ledger import Reservation
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
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        held = Reservation(
            id=uuid.uuid4().hex,
            principal="p",
            window_start=1000.0,
            amount=0.0,
            created_at=time.time(),
            owner="me",
            shared=False,
            tool="chat",
            provider="x",
            model="m",
        )
        start = asyncio.create_task(store.reserve(held, None, alone=True))
        await asyncio.sleep(0.4)
        assert not start.done()  # waiting for the lock, not on the loop
        other.execute("COMMIT")
        await asyncio.wait_for(start, 5)
        ticking.cancel()
        other.close()
        assert max(gaps) < 0.2, max(gaps)
        rows = await store.fetch(store.q("SELECT id FROM {s}reservations"))
        assert [row["id"] for row in rows] == [held.id]
    finally:
        await store.close()
