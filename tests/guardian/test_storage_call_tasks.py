"""The task rows' repository (guardian/storage/call_tasks.py) on both backends: a row answers
only to its owner and only until it expires, the per-principal cap counts in the database,
an ending is written once, a cancel request reaches the running replica only, a restart
fails that replica's working rows, and the sweep deletes expired rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.storage import Storage, open_storage

NOW = 1_000_000.0
DAY = 86_400.0


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        store = await open_storage(request.getfixturevalue("pg_database"), tmp_path / "x.db")
    yield store
    await store.close()


async def add(storage: Storage, task_id: str, owner: str = "u_ada", replica: str = "a") -> bool:
    return await storage.add_call_task(task_id, owner, replica, "running", NOW, NOW + DAY, 2)


async def test_a_row_is_its_owners_until_it_expires_and_the_cap_counts_live_rows(
    storage: Storage,
) -> None:
    assert await add(storage, "t1") and await add(storage, "t2")
    assert not await add(storage, "t3")  # the owner's cap (2)
    assert await add(storage, "t4", owner="u_bob")  # another owner's count is its own
    row = await storage.get_call_task("t1", "u_ada", NOW)
    assert row is not None and row["status"] == "working" and row["replica"] == "a"
    assert row["status_message"] == "running" and row["result"] is None
    assert row["expires_at"] == pytest.approx(NOW + DAY) and row["cancel_requested"] == 0
    assert await storage.get_call_task("t1", "u_bob", NOW) is None
    assert await storage.get_call_task("nope", "u_ada", NOW) is None
    assert await storage.get_call_task("t1", "u_ada", NOW + DAY) is None  # expired
    # expired rows no longer count against the cap, even before the sweep
    assert await storage.add_call_task("t5", "u_ada", "a", "running", NOW + DAY, NOW + 2 * DAY, 2)
    assert await storage.delete_expired_call_tasks(NOW + DAY) == 3
    assert await storage.get_call_task("t5", "u_ada", NOW + DAY) is not None


async def test_an_ending_is_written_once_with_its_typed_json(storage: Storage) -> None:
    await add(storage, "t1")
    result = json.dumps({"text": "hi \u00e9", "usage": {"input_tokens": 3}})
    assert await storage.end_call_task("t1", "completed", "answered", result, None, NOW + 1)
    assert not await storage.end_call_task("t1", "cancelled", "late", None, None, NOW + 2)
    row = await storage.get_call_task("t1", "u_ada", NOW + 3)
    assert row is not None and row["status"] == "completed" and row["updated_at"] == NOW + 1
    assert json.loads(row["result"]) == {"text": "hi \u00e9", "usage": {"input_tokens": 3}}
    assert row["error"] is None and row["status_message"] == "answered"


async def test_a_cancel_request_reaches_the_running_replica_only(storage: Storage) -> None:
    await add(storage, "t1", replica="a")
    await add(storage, "t2", replica="b")
    await add(storage, "t3", replica="a")
    assert not await storage.request_call_task_cancel("t1", "u_bob", "asked", NOW)
    assert await storage.call_tasks_to_cancel("a") == []
    assert await storage.request_call_task_cancel("t1", "u_ada", "asked", NOW + 1)
    assert await storage.request_call_task_cancel("t2", "u_ada", "asked", NOW + 1)
    assert await storage.call_tasks_to_cancel("a") == ["t1"]
    assert await storage.call_tasks_to_cancel("b") == ["t2"]
    row = await storage.get_call_task("t1", "u_ada", NOW + 1)
    assert row is not None and row["status_message"] == "asked" and row["status"] == "working"
    await storage.end_call_task("t1", "cancelled", "cancelled", None, None, NOW + 2)
    assert await storage.call_tasks_to_cancel("a") == []  # ended: nothing left to do
    assert not await storage.request_call_task_cancel("t1", "u_ada", "asked", NOW + 3)


async def test_a_restart_fails_its_own_working_rows_only(storage: Storage) -> None:
    await add(storage, "t1", replica="a")
    await add(storage, "t2", replica="a")
    await add(storage, "t3", owner="u_bob", replica="b")
    await storage.end_call_task("t2", "completed", "answered", "{}", None, NOW + 1)
    error = json.dumps({"code": "unavailable", "message": "restarted"})
    assert await storage.fail_call_tasks_of("a", "failed: restarted", error, NOW + 2) == 1
    failed = await storage.get_call_task("t1", "u_ada", NOW + 2)
    assert failed is not None and failed["status"] == "failed"
    assert json.loads(failed["error"]) == {"code": "unavailable", "message": "restarted"}
    done = await storage.get_call_task("t2", "u_ada", NOW + 2)
    assert done is not None and done["status"] == "completed"
    other = await storage.get_call_task("t3", "u_bob", NOW + 2)
    assert other is not None and other["status"] == "working"
