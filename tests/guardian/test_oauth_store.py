"""The OAuth tables on SQLite and PostgreSQL: a code or a refresh token is spent once, even
by racing requests, and revoking a family reaches every token of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.oauth.store import OAuthStore
from guardian.storage import Storage
from guardian.storage.factory import open_storage

GRANT = {
    "family": "fam1",
    "client_id": "sgc_x",
    "user_name": "ada",
    "user_id": "u_ada",
    "redirect_uri": "http://127.0.0.1:9/cb",
    "scope": "mcp llm",
    "resource": "http://127.0.0.1:8000",
    "challenge": "c" * 43,
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        store = await open_storage(request.getfixturevalue("pg_database"), tmp_path / "x.db")
    yield store
    await store.close()


async def test_a_code_is_spent_once_even_by_racing_requests(storage: Storage) -> None:
    store = OAuthStore(storage)
    await store.put_code("h1", GRANT, 60)
    results = await asyncio.gather(*(store.spend_code("h1") for _ in range(8)))
    assert sum(spent for _, spent in results) == 1
    assert all(row is not None and row["family"] == "fam1" for row, _ in results)
    assert await store.spend_code("unknown") == (None, False)


async def test_refresh_rotation_and_family_revocation(storage: Storage) -> None:
    store = OAuthStore(storage)
    values = {
        k: GRANT[k] for k in ("family", "client_id", "user_name", "user_id", "scope", "resource")
    }
    await store.put_token("access1", "access", values, 900)
    await store.put_token("refresh1", "refresh", values, 3600)
    assert (await store.spend_refresh("access1"))[1] is False  # not a refresh token
    results = await asyncio.gather(*(store.spend_refresh("refresh1") for _ in range(4)))
    assert sum(spent for _, spent in results) == 1
    row, spent = await store.spend_refresh("refresh1")
    assert row is not None and row["used_at"] is not None and not spent
    assert await store.revoke_family("fam1") == 2
    access = await store.get_token("access1")
    assert access is not None and access["revoked_at"] is not None


async def test_consents_and_clients(storage: Storage) -> None:
    store = OAuthStore(storage)
    await store.put_client("sgc_x", "registered", "X", ["http://127.0.0.1:9/cb"], {})
    client = await store.get_client("sgc_x")
    assert client is not None and client["redirect_uris"] == ["http://127.0.0.1:9/cb"]
    await store.put_grant("u_ada", "ada", "sgc_x", "mcp")
    await store.put_grant("u_ada", "ada", "sgc_x", "mcp llm")
    grants = await store.list_grants("ada")
    assert [(g["client_id"], g["scope"]) for g in grants] == [("sgc_x", "mcp llm")]
    values = {
        k: GRANT[k] for k in ("family", "client_id", "user_name", "user_id", "scope", "resource")
    }
    await store.put_token("a2", "access", values, 900)
    assert (await store.list_clients())[0]["live_tokens"] == 1
    assert await store.revoke_grant("u_ada", "sgc_x") == 1
    token = await store.get_token("a2")
    assert token is not None and token["revoked_at"] is not None
    assert await store.revoke_client("sgc_x") == 1
    assert await store.revoke_client("sgc_x") == 0


async def test_a_consent_ticket_is_taken_once_and_not_after_it_expires(storage: Storage) -> None:
    store = OAuthStore(storage)
    ada = {"id": "u_ada", "name": "ada"}
    await store.put_ticket("t1", ada, {"client_id": "sgc_x"}, 60)
    await store.put_ticket("t2", ada, {"client_id": "sgc_x"}, -1)
    results = await asyncio.gather(*(store.take_ticket("t1") for _ in range(4)))
    assert [r for r in results if r is not None] == [("u_ada", {"client_id": "sgc_x"})]
    assert await store.take_ticket("t2") is None


async def test_unused_registrations_expire_and_used_ones_stay(storage: Storage) -> None:
    store = OAuthStore(storage)
    for client_id in ("sgc_unused", "sgc_used"):
        await store.put_client(client_id, "registered", "c", ["http://127.0.0.1:9/cb"], {})
    await store.put_client("https://app.example/c", "cimd", "d", ["https://app.example/cb"], {})
    await store.put_code("h-used", {**GRANT, "client_id": "sgc_used"}, 60)
    assert await store.count_registered() == 2
    assert await store.expire_unused(0.0) == 0  # nothing registered before the epoch
    assert await store.expire_unused(9e18) == 1
    assert await store.get_client("sgc_unused") is None
    assert await store.get_client("sgc_used") is not None
    assert await store.get_client("https://app.example/c") is not None
    assert await store.count_registered() == 1
