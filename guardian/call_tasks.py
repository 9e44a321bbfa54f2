"""LLM calls run as tasks (the MCP tasks extension): started now, followed or cancelled later.

A task is a sealed `llm.complete` that runs in the guardian that started it, on its own, not
tied to the sandbox connection that asked. Its state lives in the guardian's database
(`guardian/storage/call_tasks.py`), so every guardian sharing that database, and every
sandbox connected to any of them, answers for it. Each belongs to the principal that started
it (its budget key): another principal asking for it gets "not found", exactly as for an id
that never existed.

A cancel asked of the guardian running the call ends it at once; asked of another, it is
written to the task's row, which the running guardian polls (`CANCEL_POLL_S`), and the asking
guardian waits for the ending to be written. Either way the provider call is cancelled and
billed by the usual rules of a cancelled call. Tasks survive neither a day (`TTL_S`; a sweep
deletes them) nor a restart of the guardian running their call (it marks them failed when it
starts again); both are said in every task's `status_message` and in docs/MCP.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guardian.calls.metering import CANCELLED, SHUTDOWN
from guardian.storage import Storage
from guardian.storage.base import Row, StorageError
from protocol.errors import Internal, NotFound, RateLimited, RPCError, Unavailable

logger = logging.getLogger("sealgate.guardian.call_tasks")

#: A task and its result are forgotten a day after it started, whatever its state.
TTL_S = 86_400.0
#: What a client is told to wait between polls.
POLL_INTERVAL_MS = 1_000
#: Tasks one principal may hold at once (finished ones count until they expire).
MAX_PER_PRINCIPAL = 64
#: Calls this guardian runs as tasks at once, over all principals.
MAX_TASKS = 10_000
#: How often the guardian running calls looks for cancels asked of another guardian.
CANCEL_POLL_S = 0.5
#: How long a cancel asked of this guardian waits for another guardian to end the call.
CANCEL_WAIT_S = 5.0
#: How often expired rows are deleted.
SWEEP_S = 300.0
#: Tries to write a call's ending while the database does not answer.
END_TRIES = 3
LIFETIME = (
    "kept in the guardian's database for a day at most; a call still running when its"
    " guardian restarts fails"
)
MESSAGES = {
    "working": "the call is running",
    "completed": "the call answered",
    "failed": "the call failed",
    "cancelled": "the call was cancelled",
}
RESTARTED = "the guardian restarted before the call ended"
STOPPED = "the guardian stopped before the call ended"

Run = Callable[[], Awaitable[dict[str, Any]]]


def message(status: str, detail: str = "") -> str:
    """A task's `status_message`: its state, why, and how long it is kept."""
    said = MESSAGES[status] + (f" ({detail})" if detail else "")
    return f"{said}; {LIFETIME}"


def view(row: Row) -> dict[str, Any]:
    """What `tasks.get` answers (the `TaskInfo` result) for a task's row."""
    answer: dict[str, Any] = {
        "task_id": row["id"],
        "status": row["status"],
        "status_message": row["status_message"],
        "created_at": float(row["created_at"]),
        "updated_at": float(row["updated_at"]),
        "ttl_ms": int(TTL_S * 1000),
        "poll_interval_ms": POLL_INTERVAL_MS,
    }
    if row["result"] is not None:
        answer["result"] = json.loads(row["result"])
    if row["error"] is not None:
        answer["error"] = json.loads(row["error"])
    return answer


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(slots=True)
class _Running:
    owner: str
    created_at: float
    runner: asyncio.Task[None] | None = field(default=None, repr=False)
    #: the runner has taken its first step (a task cancelled before that never runs)
    started: bool = False
    #: why it was asked to end, if it was
    reason: str = ""
    #: the call is over and its ending is being written: a cancel no longer applies
    ending: bool = False

    def end(self, reason: str) -> None:
        self.reason = self.reason or reason
        if self.started and not self.ending and self.runner is not None:
            self.runner.cancel(reason)


class CallTasks:
    """The tasks of every guardian on this database; the calls of this one (`replica`)."""

    def __init__(self, storage: Storage, replica: str, now: Callable[[], float] = time.time):
        self.storage = storage
        self.replica = replica
        self._now = now
        self._running: dict[str, _Running] = {}
        self._closing = False

    async def recover(self) -> int:
        """At start: this guardian's tasks still `working` ran in its previous process, which
        is gone; they fail, saying so."""
        error = _json(Unavailable(RESTARTED).to_wire())
        failed = await self.storage.fail_call_tasks_of(
            self.replica, message("failed", RESTARTED), error, self._now()
        )
        if failed:
            logger.warning("%d task(s) failed: %s", failed, RESTARTED)
        return failed

    async def start(self, owner: str, run: Run) -> dict[str, Any]:
        """Start `run` as a task of `owner`; answers its first view. Refused past the caps."""
        if self._closing:
            raise Unavailable("the guardian is stopping: no new task")
        refused = RateLimited(
            f"too many tasks held (at most {MAX_PER_PRINCIPAL} per principal, finished"
            " ones included until they expire a day after they started)"
        )
        if len(self._running) >= MAX_TASKS:
            raise refused
        now = self._now()
        task_id = secrets.token_hex(16)
        first = message("working")
        if not await self.storage.add_call_task(
            task_id, owner, self.replica, first, now, now + TTL_S, MAX_PER_PRINCIPAL
        ):
            raise refused
        running = self._running[task_id] = _Running(owner=owner, created_at=now)
        running.runner = asyncio.get_running_loop().create_task(self._run(task_id, run))
        row = {"id": task_id, "status": "working", "status_message": first, "result": None}
        return view({**row, "error": None, "created_at": now, "updated_at": now})

    async def get(self, owner: str, task_id: str) -> dict[str, Any]:
        return view(await self._own(owner, task_id))

    async def cancel(self, owner: str, task_id: str) -> dict[str, Any]:
        """Cancel a running task and wait until its ending is written (its provider call
        ended, billed as a cancelled call); a finished one stays as it is. Answers the
        task's view after the cancel took hold (or after `CANCEL_WAIT_S`, when the guardian
        running it does not answer)."""
        asked = await self.storage.request_call_task_cancel(
            task_id, owner, message("working", "cancel requested"), self._now()
        )
        local = self._running.get(task_id)
        if asked and local is not None and local.runner is not None:
            local.end(CANCELLED)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(local.runner)
        row = await self._own(owner, task_id)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while asked and row["status"] == "working" and time.monotonic() < deadline:
            await asyncio.sleep(CANCEL_POLL_S / 5)
            row = await self._own(owner, task_id)
        return view(row)

    async def run(self) -> None:
        """The background loop: end the calls whose cancel another guardian wrote (and
        those past their day), and delete expired rows now and then."""
        last_sweep = -SWEEP_S  # the first turn sweeps
        while True:
            try:
                await self.poll()
                if time.monotonic() - last_sweep >= SWEEP_S:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except StorageError as exc:
                logger.warning("task poll failed: %s", exc)
            await asyncio.sleep(CANCEL_POLL_S)

    async def poll(self) -> None:
        """Cancel this guardian's calls that were asked to end elsewhere or outlived a day."""
        if not self._running:
            return
        oldest = self._now() - TTL_S
        ending = {i for i, r in self._running.items() if r.created_at <= oldest}
        ending.update(await self.storage.call_tasks_to_cancel(self.replica))
        for task_id in ending:
            running = self._running.get(task_id)
            if running is not None:
                running.end(CANCELLED)

    async def sweep(self) -> int:
        """Delete the rows of tasks past their day."""
        return await self.storage.delete_expired_call_tasks(self._now())

    async def close(self) -> None:
        """The guardian stops: running calls are cancelled as `shutdown` (billed as calls cut
        short) and their tasks written as failed, saying why."""
        self._closing = True
        running = [r.runner for r in self._running.values() if r.runner and not r.runner.done()]
        for task in self._running.values():
            task.end(SHUTDOWN)
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        return {"tasks_working": len(self._running)}

    # ---------------------------------------------------------------------------------------
    async def _own(self, owner: str, task_id: str) -> Row:
        row = await self.storage.get_call_task(task_id, owner, self._now())
        if row is None:
            # the same words for another's task as for none: an id says nothing
            raise NotFound(f"no task {task_id!r} (tasks are kept a day, and not over a restart)")
        return row

    async def _run(self, task_id: str, run: Run) -> None:
        cancelled: asyncio.CancelledError | None = None
        ending: tuple[str, str, str | None, str | None]
        try:
            running = self._running.get(task_id)
            if running is not None:
                running.started = True
                if running.reason:  # ended before it began: the call never leaves
                    raise asyncio.CancelledError(running.reason)
            result = await run()
            ending = ("completed", message("completed"), _json(result), None)
        except asyncio.CancelledError as exc:
            cancelled = exc
            if self._closing:
                error = _json(Unavailable(STOPPED).to_wire())
                ending = ("failed", message("failed", STOPPED), None, error)
            else:
                ending = ("cancelled", message("cancelled"), None, None)
        except RPCError as exc:
            ending = ("failed", message("failed"), None, _json(exc.to_wire()))
        except Exception as exc:  # a bug: the task fails, the guardian goes on
            logger.exception("task %s failed unexpectedly", task_id)
            error = _json(Internal(f"internal error ({type(exc).__name__})").to_wire())
            ending = ("failed", message("failed"), None, error)
        if task_id in self._running:
            self._running[task_id].ending = True
        # written whole even if a cancel lands now: a task never stays `working` for that
        write = asyncio.ensure_future(self._write_ending(task_id, *ending))
        try:
            while not write.done():
                try:
                    await asyncio.shield(write)
                except asyncio.CancelledError as exc:
                    cancelled = cancelled or exc
        finally:
            self._running.pop(task_id, None)
        if cancelled is not None:
            raise cancelled

    async def _write_ending(
        self, task_id: str, status: str, said: str, result: str | None, error: str | None
    ) -> None:
        """Write the ending, trying again while the database does not answer; if it never
        does, the task stays `working` until this guardian restarts or the day is over."""
        for attempt in range(1, END_TRIES + 1):
            try:
                await self.storage.end_call_task(task_id, status, said, result, error, self._now())
                return
            except StorageError as exc:
                logger.warning("task %s: ending not written (try %d): %s", task_id, attempt, exc)
                if attempt < END_TRIES:
                    await asyncio.sleep(0.5 * attempt)
