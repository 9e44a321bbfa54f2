"""Identity by user id, on SQLite and PostgreSQL: rows written by name before ids existed
migrate to the user who held the name when they were written; budgets and limits follow the
id; a principal's grant digest changes with anything that decides what it may do."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from guardian.identity.principal import BUILTIN_ROLES, Principal
from guardian.limits import Limits, month_start
from guardian.storage import Storage, base, database, open_storage
from guardian.storage.schema import MIGRATIONS
from protocol.errors import BudgetExceeded

#: the migration that adds user ids (found by content: migrations may be appended after it)
IDS = next(n for n, m in enumerate(MIGRATIONS) if "ALTER TABLE {s}users ADD COLUMN id TEXT" in m)


@pytest.fixture(params=["sqlite", "postgresql"])
async def before_ids(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Storage]:
    """A database at the schema just before user ids."""
    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS[:IDS])
    dsn = request.getfixturevalue("pg_database") if request.param == "postgresql" else None
    store = await open_storage(dsn, tmp_path / "guardian.db")
    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS)
    yield store
    await store.close()


async def test_name_keyed_rows_migrate_to_the_user_who_held_the_name(before_ids: Storage) -> None:
    s = before_ids
    await s.execute(
        s.q("INSERT INTO {s}users (name, role, created_at) VALUES ('demo', 'user', 100)")
    )
    for token_id, created in (("old", 50.0), ("new", 150.0)):  # 'old': an earlier demo's
        await s.execute(
            s.q(
                "INSERT INTO {s}api_tokens (id, user_name, token_hash, created_at)"
                " VALUES (?, 'demo', ?, ?)"
            ),
            token_id,
            f"hash-{token_id}",
            created,
        )
        await s.execute(
            s.q(
                "INSERT INTO {s}oauth_grants (user_name, client_id, scope, created_at,"
                " updated_at) VALUES ('demo', ?, 'mcp', ?, ?)"
            ),
            f"client-{token_id}",
            created,
            created,
        )
    await s.execute(
        s.q("INSERT INTO {s}counters (key, window_start, value) VALUES ('spend:demo', ?, 2.5)"),
        month_start(),
    )
    assert await s.migrate() == len(MIGRATIONS)
    user = await s.get_user("demo")
    assert user is not None and str(user["id"]).startswith("u_")
    old, new = await s.find_token("hash-old"), await s.find_token("hash-new")
    assert old is not None and old["user_id"] == ""  # belongs to nobody now: never resolves
    assert new is not None and new["user_id"] == user["id"]
    grants = await s.fetch(s.q("SELECT client_id, user_id FROM {s}oauth_grants"))
    assert grants == [{"client_id": "client-new", "user_id": user["id"]}]
    assert await s.read_counter(f"spend:{user['id']}", month_start()) == 2.5
    assert await s.get_user_by_id("") is None


async def test_budgets_are_kept_by_user_id(tmp_path: Path) -> None:
    storage = await open_storage(None, tmp_path / "guardian.db")
    try:
        limits = Limits(storage)
        first = await limits.reserve(
            "demo", 1.0, 0.9, tool="chat", provider="p", model="m", user_id="u_first"
        )
        limits.settle(first, 0.9)
        with pytest.raises(BudgetExceeded):
            await limits.reserve(
                "demo", 1.0, 0.9, tool="chat", provider="p", model="m", user_id="u_first"
            )
        # a new user of the same name has the whole budget
        await limits.reserve(
            "demo", 1.0, 0.9, tool="chat", provider="p", model="m", user_id="u_second"
        )
        await limits.check_budget("u_second", 1.0)
    finally:
        await storage.close()


def test_the_grant_digest_follows_what_decides_access() -> None:
    role = BUILTIN_ROLES["user"]
    one = Principal("demo", role, "user", user_id="u_1", credential="token:tok_a")
    assert one.key == "u_1"
    assert (
        one.grant()
        == Principal("demo", role, "user", user_id="u_1", credential="token:tok_a").grant()
    )
    others = [
        replace(one, user_id="u_2"),
        replace(one, credential="token:tok_b"),
        replace(one, scopes=("mcp",)),
        replace(one, role=replace(role, tools=("llm_complete",))),
    ]
    assert len({one.grant(), *(o.grant() for o in others)}) == 5
    wire = one.to_wire()
    assert wire["user_id"] == "u_1" and wire["grant"] == one.grant()


async def test_spend_is_reconciled_by_user_id_at_start(tmp_path: Path) -> None:
    """One guardian on SQLite counts budgets in memory, rebuilt from the ledger at start:
    the rows of an earlier user of the name count for nobody now."""
    storage = await open_storage(None, tmp_path / "guardian.db")
    try:
        row = dict(
            principal="demo",
            tool="chat",
            provider="p",
            model="m",
            input_tokens=1,
            output_tokens=1,
            latency_ms=1.0,
            outcome="ok",
            fallback_path="[]",
        )
        now = time.time()
        await storage.add_usage(
            [
                base.UsageRow(ts=now, cost_usd=0.75, user_id="u_earlier", **row),  # type: ignore[arg-type]
                base.UsageRow(ts=now, cost_usd=0.25, user_id="u_now", **row),  # type: ignore[arg-type]
            ]
        )
        assert await storage.spend_since(now - 1) == {"u_earlier": 0.75, "u_now": 0.25}
        limits = Limits(storage)
        await limits.start()
        await limits.check_budget("u_now", 0.5)
        with pytest.raises(BudgetExceeded):
            await limits.check_budget("u_earlier", 0.5)
    finally:
        await storage.close()
