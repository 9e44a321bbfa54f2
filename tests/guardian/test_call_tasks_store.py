"""The guardian's task store alone: a task answers only to its owner (another gets the same
"not found" as for no task), a cancel ends the running call, a day later every task is gone,
and the caps hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from guardian import call_tasks
from guardian.call_tasks import CallTasks
from protocol.errors import NotFound, RateLimited, Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def answer() -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"text": "hi"}


async def test_a_task_answers_its_owner_only_and_says_how_long_it_lives() -> None:
    tasks = CallTasks()
    started = tasks.start("ada", answer)
    assert started["status"] == "working" and started["ttl_ms"] == 86_400_000
    assert "restart" in started["status_message"] and "a day" in started["status_message"]
    await asyncio.sleep(0.01)
    done = tasks.get("ada", started["task_id"])
    assert done["status"] == "completed" and done["result"] == {"text": "hi"}
    with pytest.raises(NotFound) as other:
        tasks.get("bob", started["task_id"])
    with pytest.raises(NotFound) as none:
        tasks.get("bob", "0" * 32)
    assert other.value.message.replace(started["task_id"], "X") == none.value.message.replace(
        "0" * 32, "X"
    )
    with pytest.raises(NotFound):
        tasks.cancel("bob", started["task_id"])


async def test_cancel_ends_the_running_call_and_a_failure_keeps_its_typed_error() -> None:
    tasks = CallTasks()
    ended = asyncio.Event()

    async def slow() -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()
        return {}

    async def refused() -> dict[str, Any]:
        raise Unavailable("every provider is down")

    started = tasks.start("ada", slow)
    failing = tasks.start("ada", refused)
    await asyncio.sleep(0.01)
    view = await tasks.wait_cancelled("ada", started["task_id"])
    assert ended.is_set() and view["status"] == "cancelled"
    failed = tasks.get("ada", failing["task_id"])
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "unavailable", "message": "every provider is down"}


async def test_a_day_later_the_task_is_gone_and_a_running_one_is_cancelled() -> None:
    clock = Clock()
    tasks = CallTasks(now=clock)
    forever = asyncio.Event()

    async def hangs() -> dict[str, Any]:
        await forever.wait()
        return {}

    started = tasks.start("ada", hangs)
    clock.now += call_tasks.TTL_S + 1
    with pytest.raises(NotFound):
        tasks.get("ada", started["task_id"])
    assert tasks.stats() == {"tasks": 0, "tasks_working": 0}


async def test_caps_per_principal_and_after_close_nothing_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_tasks, "MAX_PER_PRINCIPAL", 2)
    tasks = CallTasks()
    tasks.start("ada", answer)
    tasks.start("ada", answer)
    with pytest.raises(RateLimited, match="too many tasks"):
        tasks.start("ada", answer)
    tasks.start("bob", answer)  # another principal's count is its own
    await tasks.close()
    with pytest.raises(Unavailable, match="stopping"):
        tasks.start("carol", answer)
