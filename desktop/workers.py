"""Network work off the GUI thread: a task runs in Qt's thread pool and reports through a
queue that a GUI timer drains.

No Python-side `Signal.emit()` carries a task's progress: PySide6 6.12 on Python 3.11 loses
a reference to `True` on every emit from Python, and the app died (`Fatal Python error:
bool_dealloc`) after about 5,000 streamed chunks. A QTimer's `timeout` is emitted by Qt
itself and does not leak, so the worker only puts into a queue and the timer hands what
arrived to the handlers on the GUI thread: the chunks since the last tick as one string, then
the result. Handlers may touch widgets; the GUI never waits on the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer

from desktop.errors import HubError

logger = logging.getLogger(__name__)

#: The work: called with an `emit(text)` for partial results; returns the final result.
Work = Callable[[Callable[[str], None]], Any]
#: How often the GUI takes what the workers queued: chunks of a stream arrive this coarse.
DRAIN_MS = 30
_CHUNK, _DONE, _FAILED = "chunk", "done", "failed"
T = TypeVar("T")


def drain(queue: SimpleQueue[T], limit: int | None = None) -> list[T]:
    """Whatever is in `queue` now (at most `limit` items), without waiting."""
    items: list[T] = []
    while limit is None or len(items) < limit:
        try:
            items.append(queue.get_nowait())
        except Empty:
            break
    return items


class Task(QRunnable):
    def __init__(
        self,
        work: Work,
        on_done: Callable[[Any], None],
        on_failed: Callable[[HubError], None],
        on_chunk: Callable[[str], None] | None,
    ) -> None:
        super().__init__()
        self.work = work
        self.on_done, self.on_failed, self.on_chunk = on_done, on_failed, on_chunk
        self.events: SimpleQueue[tuple[str, Any]] = SimpleQueue()

    def _emit(self, text: str) -> None:
        self.events.put((_CHUNK, text))

    def run(self) -> None:
        try:
            result = self.work(self._emit)
        except HubError as exc:
            self.events.put((_FAILED, exc))
        except Exception as exc:  # a bug must show as a message, never kill the app
            logger.exception("task failed")
            error = HubError(f"Unexpected error: {type(exc).__name__}: {exc}")
            self.events.put((_FAILED, error))
        else:
            self.events.put((_DONE, result))


class Runner(QObject):
    """Starts tasks, keeps them alive until they report, and delivers their reports on the
    GUI thread every `DRAIN_MS` while any is running. `flush_first` mailboxes (the request
    log) are emptied before, so what a task logged shows no later than its result."""

    def __init__(
        self, parent: QObject | None = None, flush_first: tuple[Mailbox[Any], ...] = ()
    ) -> None:
        super().__init__(parent)
        self.flush_first = flush_first
        self.pool = QThreadPool(self)
        self._running: list[Task] = []
        self._timer = QTimer(self, interval=DRAIN_MS)
        self._timer.timeout.connect(self.deliver)

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
        task = Task(work, on_done, on_failed, on_chunk)
        task.setAutoDelete(False)
        self._running.append(task)
        if not self._timer.isActive():
            self._timer.start()
        self.pool.start(task)
        return task

    def deliver(self) -> None:
        """Each running task's chunks since the last call as one string, then its result."""
        for mailbox in self.flush_first:
            mailbox.flush()
        for task in list(self._running):
            texts: list[str] = []
            final: tuple[str, Any] | None = None
            for kind, value in drain(task.events):
                if kind == _CHUNK:
                    texts.append(value)
                else:
                    final = (kind, value)  # always the last event a task puts
            if texts and task.on_chunk is not None:
                task.on_chunk("".join(texts))
            if final is not None:
                self._running.remove(task)
                handler = task.on_done if final[0] == _DONE else task.on_failed
                handler(final[1])
        if not self._running:
            self._timer.stop()

    def wait(self, msecs: int = 10_000) -> bool:
        return self.pool.waitForDone(msecs)


class Mailbox(QObject, Generic[T]):
    """Values put from any thread, handed in order to `deliver` on the GUI thread by a timer
    (for the same reason as the Runner: no Python-side signal emit per value)."""

    def __init__(
        self, deliver: Callable[[T], None], interval_ms: int, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._deliver = deliver
        self._queue: SimpleQueue[T] = SimpleQueue()
        self._timer = QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self.flush)
        self._timer.start()

    def put(self, value: T) -> None:
        self._queue.put(value)

    def flush(self) -> None:
        for value in drain(self._queue):
            self._deliver(value)
