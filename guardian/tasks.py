"""The guardian's background tasks (usage ledger writer, secret-store poller), supervised.

A task that raises unexpectedly is logged once with its traceback and started again after a
backoff that grows per failure and resets after a healthy run, instead of dying silently and
leaving its queue to grow. `status` and `health` show each task's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guardian.redact import Redactor

logger = logging.getLogger("sealgate.guardian.tasks")

BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 30.0
HEALTHY_RUN_S = 60.0


@dataclass(slots=True)
class TaskStats:
    restarts: int = 0
    last_error: str = ""
    running: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"running": self.running, "restarts": self.restarts, "last_error": self.last_error}


@dataclass(slots=True)
class TaskSet:
    """Named, supervised loops; `close()` cancels and awaits every one."""

    #: a task's error text reaches `status`: redacted whole, then cut
    redactor: Redactor = field(default_factory=Redactor)
    backoff_initial_s: float = BACKOFF_INITIAL_S
    backoff_max_s: float = BACKOFF_MAX_S
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _stats: dict[str, TaskStats] = field(default_factory=dict)

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        if name in self._tasks:
            raise RuntimeError(f"A background task named {name!r} is already running.")
        stats = self._stats[name] = TaskStats()
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._supervise(name, run, stats), name=name
        )

    async def _supervise(
        self, name: str, run: Callable[[], Awaitable[None]], stats: TaskStats
    ) -> None:
        delay = self.backoff_initial_s
        while True:
            started = time.monotonic()
            stats.running = True
            try:
                await run()
            except asyncio.CancelledError:
                stats.running = False
                raise
            except Exception as exc:
                stats.running = False
                stats.restarts += 1
                stats.last_error = self.redactor.redact_and_cut(f"{type(exc).__name__}: {exc}", 200)
                if time.monotonic() - started >= HEALTHY_RUN_S:
                    delay = self.backoff_initial_s
                logger.exception("background task %s failed; restarting in %.1f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            stats.running = False
            return  # finished on its own (nothing left to do)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: stats.as_dict() for name, stats in sorted(self._stats.items())}

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
