"""The guardian's tasks alone, on both backends: a task answers only to its owner (another gets
the same "not found" as for no task), a cancel ends the running call (asked of the guardian
running it, or of another on the same database), a day later every task is gone, the caps
hold, and a restarted guardian fails the tasks its previous process left running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from guardian import call_tasks
from guardian.call_tasks import CallTasks
from guardian.storage import Storage, open_storage
from protocol.errors import NotFound, RateLimited, Unavailable


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        store = await open_storage(request.getfixturevalue("pg_database"), tmp_path / "x.db")
    yield store
    await store.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def answer() -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"text": "hi"}


async def until_done(tasks: CallTasks, owner: str, task_id: str) -> dict[str, Any]:
    for _ in range(200):
        view = await tasks.get(owner, task_id)
        if view["status"] != "working":
            return view
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} still working")


async def test_a_task_answers_its_owner_only_and_says_how_long_it_lives(
    storage: Storage,
) -> None:
    tasks = CallTasks(storage, "a")
    started = await tasks.start("ada", answer)
    assert started["status"] == "working" and started["ttl_ms"] == 86_400_000
    assert "restart" in started["status_message"] and "a day" in started["status_message"]
    done = await until_done(tasks, "ada", started["task_id"])
    assert done["status"] == "completed" and done["result"] == {"text": "hi"}
    with pytest.raises(NotFound) as other:
        await tasks.get("bob", started["task_id"])
    with pytest.raises(NotFound) as none:
        await tasks.get("bob", "0" * 32)
    assert other.value.message.replace(started["task_id"], "X") == none.value.message.replace(
        "0" * 32, "X"
    )
    with pytest.raises(NotFound):
        await tasks.cancel("bob", started["task_id"])
    # another guardian on the same database answers for it, to its owner only
    replica = CallTasks(storage, "b")
    assert (await replica.get("ada", started["task_id"]))["result"] == {"text": "hi"}
    with pytest.raises(NotFound):
        await replica.get("bob", started["task_id"])


async def test_cancel_ends_the_running_call_and_a_failure_keeps_its_typed_error(
    storage: Storage,
) -> None:
    tasks = CallTasks(storage, "a")
    ended = asyncio.Event()

    async def slow() -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()
        return {}

    async def refused() -> dict[str, Any]:
        raise Unavailable("every provider is down")

    started = await tasks.start("ada", slow)
    failing = await tasks.start("ada", refused)
    await asyncio.sleep(0.01)
    view = await tasks.cancel("ada", started["task_id"])
    assert ended.is_set() and view["status"] == "cancelled"
    failed = await until_done(tasks, "ada", failing["task_id"])
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "unavailable", "message": "every provider is down"}
    # a finished task stays as it is
    assert (await tasks.cancel("ada", failing["task_id"]))["status"] == "failed"


async def test_a_cancel_asked_of_another_guardian_ends_the_call_where_it_runs(
    storage: Storage,
) -> None:
    running, other = CallTasks(storage, "a"), CallTasks(storage, "b")
    ended = asyncio.Event()

    async def slow() -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()
        return {}

    started = await running.start("ada", slow)
    poller = asyncio.create_task(running.run())
    try:
        with pytest.raises(NotFound):
            await other.cancel("bob", started["task_id"])
        assert not ended.is_set()
        view = await other.cancel("ada", started["task_id"])
        assert ended.is_set() and view["status"] == "cancelled"
    finally:
        poller.cancel()


async def test_a_day_later_the_task_is_gone_and_a_running_one_is_cancelled(
    storage: Storage,
) -> None:
    clock = Clock()
    tasks = CallTasks(storage, "a", now=clock)
    ended = asyncio.Event()

    async def hangs() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()
        return {}

    started = await tasks.start("ada", hangs)
    finished = await tasks.start("ada", answer)
    await until_done(tasks, "ada", finished["task_id"])
    clock.now += call_tasks.TTL_S + 1
    with pytest.raises(NotFound):
        await tasks.get("ada", started["task_id"])
    await tasks.poll()
    await asyncio.wait_for(ended.wait(), 5)
    assert await tasks.sweep() == 2
    # the cancelled call leaves the running set once its ending is written (a database
    # round trip after `ended`): wait for that, bounded
    for _ in range(500):
        if tasks.stats() == {"tasks_working": 0}:
            break
        await asyncio.sleep(0.01)
    assert tasks.stats() == {"tasks_working": 0}


async def test_caps_per_principal_and_after_close_nothing_starts(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(call_tasks, "MAX_PER_PRINCIPAL", 2)
    tasks = CallTasks(storage, "a")
    await tasks.start("ada", answer)
    await tasks.start("ada", answer)
    with pytest.raises(RateLimited, match="too many tasks"):
        await tasks.start("ada", answer)
    with pytest.raises(RateLimited):  # the cap is the database's: another replica's too
        await CallTasks(storage, "b").start("ada", answer)
    await tasks.start("bob", answer)  # another principal's count is its own
    await tasks.close()
    with pytest.raises(Unavailable, match="stopping"):
        await tasks.start("carol", answer)


async def test_a_stopped_or_restarted_guardian_fails_its_running_tasks_saying_why(
    storage: Storage,
) -> None:
    forever = asyncio.Event()

    async def hangs() -> dict[str, Any]:
        await forever.wait()
        return {}

    stopping = CallTasks(storage, "a")
    started = await stopping.start("ada", hangs)
    await stopping.close()
    stopped = await CallTasks(storage, "b").get("ada", started["task_id"])
    assert stopped["status"] == "failed" and "stopped" in stopped["error"]["message"]

    # a process that died left a task `working`: the next one under its name fails it
    dead, elsewhere = CallTasks(storage, "c"), CallTasks(storage, "d")
    left = await dead.start("ada", hangs)
    kept = await elsewhere.start("ada", hangs)
    assert await CallTasks(storage, "c").recover() == 1
    failed = await elsewhere.get("ada", left["task_id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "unavailable"
    assert "restarted" in failed["error"]["message"] and "restarted" in failed["status_message"]
    assert (await elsewhere.get("ada", kept["task_id"]))["status"] == "working"  # not its own
    await dead.close()  # its late ending changes nothing: the task had already ended
    assert (await elsewhere.get("ada", left["task_id"]))["status"] == "failed"
    assert "restarted" in (await elsewhere.get("ada", left["task_id"]))["error"]["message"]
    await elsewhere.close()
