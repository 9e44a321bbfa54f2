"""One storage suite, run on both backends: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.storage import Storage, open_storage
from guardian.storage.base import UsageRow
from guardian.storage.dsn import clean
from guardian.storage.schema import MIGRATIONS
from tests.pg import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        dsn = request.getfixturevalue("pg_database")
        store = await open_storage(dsn, tmp_path / "unused.db")
    yield store
    await store.close()


async def test_migrations_are_idempotent(storage: Storage) -> None:
    assert await storage.migrate() == len(MIGRATIONS)
    assert await storage.migrate() == len(MIGRATIONS)


async def test_users(storage: Storage) -> None:
    assert await storage.create_user("ada", "hash1", "user")
    assert not await storage.create_user("ada", "hash2", "admin")  # no silent overwrite
    assert await storage.count_users() == 1
    assert await storage.add_failed_login("ada") == 1
    assert await storage.add_failed_login("ada") == 2
    until = time.time() + 60
    assert await storage.set_lock("ada", until, by_operator=False)
    user = await storage.get_user("ada")
    assert user is not None and user["locked_until"] == pytest.approx(until)
    assert await storage.set_lock("ada", None, by_operator=False)
    user = await storage.get_user("ada")
    assert user is not None and user["failed_logins"] == 0 and user["locked_until"] is None
    assert await storage.set_role("ada", "admin") and await storage.set_password("ada", "h3")
    assert [u["name"] for u in await storage.list_users()] == ["ada"]
    assert await storage.delete_user("ada") and await storage.get_user("ada") is None


async def test_tokens_and_sessions(storage: Storage) -> None:
    await storage.create_user("bob", None, "user")
    await storage.create_token("tok1", "bob", "h" * 64, "laptop", None)
    found = await storage.find_token("h" * 64)
    assert found is not None and found["user_name"] == "bob" and found["revoked_at"] is None
    assert [t["id"] for t in await storage.list_tokens("bob")] == ["tok1"]
    assert await storage.revoke_token("tok1", None)
    assert not await storage.revoke_token("tok1", None)
    await storage.create_session("s" * 64, "bob", "127.0.0.1", "ua", time.time() + 60)
    session = await storage.get_session("s" * 64)
    assert session is not None and session["ip"] == "127.0.0.1"
    assert len(await storage.list_sessions()) == 1
    assert await storage.revoke_sessions("bob", None) == 1
    assert await storage.get_session("s" * 64) is None


async def test_usage_audit_and_counters(storage: Storage) -> None:
    now = time.time()
    rows = [
        UsageRow(
            ts=now,
            principal="p",
            tool="t",
            provider="x",
            model="m",
            input_tokens=1,
            output_tokens=2,
            cost_usd=0.5,
            latency_ms=1.0,
            outcome="ok",
            fallback_path="[]",
        )
        for _ in range(3)
    ]
    await storage.add_usage(rows)
    assert await storage.spend_since(now - 1) == {"p": 1.5}
    await storage.add_audit("p", "login", "refused", "10.0.0.1", "bad password")
    (entry,) = await storage.audit_since(now - 1)
    assert entry["action"] == "login" and entry["ip"] == "10.0.0.1"
    results = await asyncio.gather(*(storage.add_to_counter("k", 100.0, 1) for _ in range(20)))
    assert sorted(results) == [float(n) for n in range(1, 21)]  # atomic increments
    assert await storage.read_counter("k", 100.0) == 20
    await storage.prune_counters(200.0)
    assert await storage.read_counter("k", 100.0) == 0


def test_hosted_dsn_quirks() -> None:
    hosted = clean("postgresql://u:p@db.example.com/app?statement_timeout=5000&keepalives=1")
    assert "statement_timeout" not in hosted.dsn and "keepalives" not in hosted.dsn
    assert "sslmode=require" in hosted.dsn and hosted.ssl_raised
    assert hosted.redacted() == "postgresql://u:***@db.example.com/app"
    kept = clean("postgresql://u:p@db.example.com/app?sslmode=verify-full")
    assert "sslmode=verify-full" in kept.dsn and not kept.ssl_raised
    local = clean("postgresql://u@127.0.0.1:5432/app")
    assert "sslmode" not in local.dsn


async def test_pool_survives_terminated_connections_and_a_restart(
    postgres: PostgresServer, pg_database: str, tmp_path: Path
) -> None:
    store = await open_storage(pg_database, tmp_path / "unused.db")
    try:
        await store.create_user("carol", None, "user")
        database = pg_database.rsplit("/", 1)[-1]
        postgres.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        assert await store.count_users() == 1
        postgres.restart()
        assert await store.count_users() == 1
    finally:
        await store.close()
