"""LLM calls run as tasks (the MCP tasks extension): started now, followed or cancelled later.

A task is a sealed `llm.complete` that runs in the guardian on its own, not tied to the
sandbox connection that started it, so any sandbox replica connected to this guardian can
answer for it later. Each belongs to the principal that started it (its budget key): another
principal asking for it gets "not found", exactly as for an id that never existed.

Tasks live in this guardian's memory: they survive neither a restart of the guardian (calls
still running are cancelled and billed by the usual rules of a call cut short) nor a day
(`TTL_S`); both are said in every task's `status_message` and in docs/MCP.md. A cancelled
task's provider call is cancelled, and billed by the usual rules of a cancelled call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guardian.calls.metering import CANCELLED, SHUTDOWN
from protocol.errors import NotFound, RateLimited, RPCError, Unavailable

logger = logging.getLogger("sealgate.guardian.call_tasks")

#: A task and its result are forgotten a day after it started, whatever its state.
TTL_S = 86_400.0
#: What a client is told to wait between polls.
POLL_INTERVAL_MS = 1_000
#: Tasks one principal may hold at once (finished ones count until they expire).
MAX_PER_PRINCIPAL = 64
#: Tasks this guardian holds at once, over all principals.
MAX_TASKS = 10_000
LIFETIME = "kept in the guardian's memory for a day at most; lost if the guardian restarts"

Run = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class CallTask:
    id: str
    owner: str
    created_at: float
    updated_at: float
    status: str = "working"  # working | completed | failed | cancelled
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    runner: asyncio.Task[None] | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        """What `tasks.get` answers (the `TaskInfo` result)."""
        message = {
            "working": "the call is running",
            "completed": "the call answered",
            "failed": "the call failed",
            "cancelled": "the call was cancelled",
        }[self.status]
        view: dict[str, Any] = {
            "task_id": self.id,
            "status": self.status,
            "status_message": f"{message}; {LIFETIME}",
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "ttl_ms": int(TTL_S * 1000),
            "poll_interval_ms": POLL_INTERVAL_MS,
        }
        if self.result is not None:
            view["result"] = self.result
        if self.error is not None:
            view["error"] = self.error
        return view


class CallTasks:
    """The guardian's tasks, by id; each answers only to its owner."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._tasks: dict[str, CallTask] = {}
        self._now = now
        self._closing = False

    def start(self, owner: str, run: Run) -> dict[str, Any]:
        """Start `run` as a task of `owner`; answers its first view. Refused past the caps."""
        self._expire()
        if self._closing:
            raise Unavailable("the guardian is stopping: no new task")
        held = sum(1 for task in self._tasks.values() if task.owner == owner)
        if held >= MAX_PER_PRINCIPAL or len(self._tasks) >= MAX_TASKS:
            raise RateLimited(
                f"too many tasks held (at most {MAX_PER_PRINCIPAL} per principal, finished"
                " ones included until they expire a day after they started)"
            )
        now = self._now()
        task = CallTask(id=secrets.token_hex(16), owner=owner, created_at=now, updated_at=now)
        self._tasks[task.id] = task
        task.runner = asyncio.get_running_loop().create_task(self._run(task, run))
        return task.view()

    def get(self, owner: str, task_id: str) -> dict[str, Any]:
        return self._own(owner, task_id).view()

    def cancel(self, owner: str, task_id: str) -> dict[str, Any]:
        """Cancel a running task (its provider call ends and is billed as a cancelled call);
        a finished one stays as it is. Answers the task's view after the cancel took hold."""
        task = self._own(owner, task_id)
        if task.status == "working" and task.runner is not None:
            task.runner.cancel(CANCELLED)
        return task.view()

    async def wait_cancelled(self, owner: str, task_id: str) -> dict[str, Any]:
        """`cancel`, then wait until the call has ended (and recorded its ending)."""
        task = self._own(owner, task_id)
        self.cancel(owner, task_id)
        if task.runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task.runner)
        return task.view()

    async def close(self) -> None:
        """The guardian stops: running calls are cancelled as `shutdown` and record their
        endings (billed as calls cut short); every task is forgotten."""
        self._closing = True
        running = [t.runner for t in self._tasks.values() if t.runner and not t.runner.done()]
        for runner in running:
            runner.cancel(SHUTDOWN)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        self._tasks.clear()

    def stats(self) -> dict[str, int]:
        working = sum(1 for task in self._tasks.values() if task.status == "working")
        return {"tasks": len(self._tasks), "tasks_working": working}

    # ---------------------------------------------------------------------------------------
    def _own(self, owner: str, task_id: str) -> CallTask:
        self._expire()
        task = self._tasks.get(task_id)
        if task is None or task.owner != owner:
            # the same words for another's task as for none: an id says nothing
            raise NotFound(f"no task {task_id!r} (tasks are kept a day, and not over a restart)")
        return task

    def _expire(self) -> None:
        oldest = self._now() - TTL_S
        for task_id in [i for i, t in self._tasks.items() if t.created_at < oldest]:
            task = self._tasks.pop(task_id)
            if task.runner is not None and not task.runner.done():
                task.runner.cancel(CANCELLED)

    async def _run(self, task: CallTask, run: Run) -> None:
        try:
            task.result = await run()
            task.status = "completed"
        except asyncio.CancelledError:
            task.status = "cancelled"
            raise
        except RPCError as exc:
            task.status = "failed"
            task.error = exc.to_wire()
        except Exception as exc:  # a bug: the task fails, the guardian goes on
            logger.exception("task %s failed unexpectedly", task.id)
            task.status = "failed"
            task.error = {"code": "internal", "message": f"internal error ({type(exc).__name__})"}
        finally:
            task.updated_at = self._now()
