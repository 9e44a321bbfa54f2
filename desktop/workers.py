"""Network work off the GUI thread: a task runs in Qt's thread pool and reports by signals.

Signals emitted from a pool thread are queued to the GUI thread, so handlers may touch
widgets; the GUI never waits on the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from desktop.errors import HubError

logger = logging.getLogger(__name__)

#: The work: called with an `emit(text)` for partial results; returns the final result.
Work = Callable[[Callable[[str], None]], Any]


class TaskSignals(QObject):
    chunk = Signal(str)
    done = Signal(object)
    failed = Signal(object)


class Task(QRunnable):
    def __init__(self, work: Work) -> None:
        super().__init__()
        self.work = work
        self.signals = TaskSignals()

    def run(self) -> None:
        try:
            result = self.work(self.signals.chunk.emit)
        except HubError as exc:
            self.signals.failed.emit(exc)
        except Exception as exc:  # a bug must show as a message, never kill the app
            logger.exception("task failed")
            self.signals.failed.emit(HubError(f"Unexpected error: {type(exc).__name__}: {exc}"))
        else:
            self.signals.done.emit(result)


class Runner(QObject):
    """Starts tasks and keeps them alive until they report."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self._running: set[Task] = set()

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def start(
        self,
        work: Work,
        on_done: Callable[[Any], None],
        on_failed: Callable[[HubError], None],
        on_chunk: Callable[[str], None] | None = None,
    ) -> Task:
        task = Task(work)
        task.setAutoDelete(False)
        self._running.add(task)
        if on_chunk is not None:
            task.signals.chunk.connect(on_chunk)
        task.signals.done.connect(lambda result: self._finish(task, on_done, result))
        task.signals.failed.connect(lambda error: self._finish(task, on_failed, error))
        self.pool.start(task)
        return task

    def _finish(self, task: Task, handler: Callable[[Any], None], value: Any) -> None:
        self._running.discard(task)
        handler(value)

    def wait(self, msecs: int = 10_000) -> bool:
        return self.pool.waitForDone(msecs)
