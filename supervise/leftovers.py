"""What the children leave behind: the child subreaper and the sweep.

A process the sandbox forks (a poisoned dependency's daemon) must not outlive it, nor the
supervisor's stop. The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever a
child forks and leaves behind, however often it forks or calls setsid(), is reparented to the
supervisor rather than to PID 1, so the supervisor can always find it, in /proc, below
itself. A cgroup would do the same and more, but needs root or a delegated hierarchy, which a
non-root container (a Space) does not have; process groups and sessions are not enough, since
the forked process may leave both.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
#: Rounds of `sweep` before giving up on a process tree that keeps forking.
SWEEP_ROUNDS = 50

logger = logging.getLogger("sealgate.supervisor")


def become_subreaper() -> bool:
    """Make orphans of our descendants our children; True when the kernel agreed."""
    return bool(_libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def process_table() -> dict[int, tuple[int, str]]:
    """Every visible process: pid -> (parent pid, state letter)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int, table: Mapping[int, tuple[int, str]]) -> set[int]:
    """Every process below `root` in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def orphans(started: set[int]) -> bool:
    """Whether a process we did not start (not in `started`) is our child: a child forked
    it and left it."""
    me = os.getpid()
    try:
        text = Path(f"/proc/{me}/task/{me}/children").read_text()
    except OSError:
        table = process_table()
        return any(ppid == me and pid not in started for pid, (ppid, _) in table.items())
    return any(int(pid) not in started for pid in text.split())


def sweep(spare: set[int]) -> int:
    """Kill every process below the supervisor but `spare` (live children we started) and
    what lies below them; reap those reparented to us. Returns how many were killed."""
    me = os.getpid()
    killed = 0
    for _ in range(SWEEP_ROUNDS):
        table = process_table()
        kept = set(spare)
        for pid in spare:
            kept |= descendants(pid, table)
        victims = descendants(me, table) - kept
        if not victims:
            return killed
        for pid in victims:
            ppid, state = table[pid]
            if state != "Z" and _kill(pid, ppid):
                killed += 1
            if ppid == me:
                _reap(pid)
        time.sleep(0.01)
    logger.error("processes left below the supervisor keep appearing; giving up")
    return killed


def _kill(pid: int, ppid: int) -> bool:
    """SIGKILL `pid` through a pidfd, once sure it is still the process we saw (its parent
    unchanged), so a recycled pid is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if int(fields[1]) != ppid:
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except (OSError, IndexError, ValueError):
        return False
    finally:
        os.close(fd)


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.005)
