"""Signals, as gunicorn's arbiter takes them: a handler only queues the signal.

The main loop drains the queue and acts, so nothing runs inside a handler, and a wake-up pipe
(`signal.set_wakeup_fd`) ends the loop's sleep the moment a signal arrives.
"""

from __future__ import annotations

import os
import select
import signal

#: SIGCHLD is queued only to wake the loop, which then reaps.
WATCHED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
STOP = (signal.SIGTERM, signal.SIGINT)


class SignalQueue:
    def __init__(self) -> None:
        self.pending: list[int] = []
        self._wakeup_r = -1

    def install(self) -> None:
        self._wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        for signum in WATCHED:
            signal.signal(signum, self._queue)

    def _queue(self, signum: int, frame: object) -> None:
        self.pending.append(signum)

    def stop_asked(self) -> bool:
        """Whether a SIGTERM or SIGINT is queued."""
        return any(s in STOP for s in self.pending)

    def wait(self, timeout: float) -> bool:
        """Sleep until a signal arrives or `timeout` passes; True if a stop was asked."""
        readable, _, _ = select.select([self._wakeup_r], [], [], timeout)
        if readable:
            try:
                os.read(self._wakeup_r, 4096)
            except BlockingIOError:
                pass
        return self.stop_asked()

    def drain(self) -> list[int]:
        """The queued signals, oldest first; the queue is left empty."""
        queued, self.pending = self.pending, []
        return queued
