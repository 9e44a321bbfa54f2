"""Two changes to hypercorn's HTTP/1.1 connection, applied at start (`apply`).

**A response head leaves with the body's first piece.** hypercorn writes an HTTP/1.1
response head on its own, then each body piece: two writes, and two wakeups of the client,
before the client has anything it can use. A head is now held until the next write of the
same turn of the event loop (a JSON answer's body, a stream's first chunk: both follow their
head at once) and leaves with it in one write; a head with nothing after it in that turn (an
event stream that waits for its first event) is written on the next turn, alone. Measured
in bench/RESULTS.md (time to first chunk, 2026-12-07).

**A peer that closes an idle connection frees its socket at once, not after the idle timeout.**

hypercorn 0.18 (asyncio) reads EOF on a connection with no request in progress, leaves its
read loop, and then waits for the connection's idle-timeout task before closing the socket:
a client that connects and hangs up costs the sandbox a descriptor for `idle_timeout_s` (75 s
by default), so connecting and closing ~300 times a second exhausts a 20,000-descriptor limit
(found by tests/reliability/test_floods.py). Patched here because the fix is one call where the
read loop ends, and there is no setting for it; remove when hypercorn stops the idle task on
EOF itself (the test then still passes without this module).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol

_PATCHED = "_sealgate_stops_idle_on_eof"
_HEAD_PATCHED = "_sealgate_head_with_body"
#: The held head's attribute on a connection (bytes, or None when nothing is held).
_HELD = "_sealgate_held_head"
#: Flushes under way (the loop keeps only a weak reference to a task).
_FLUSHES: set[asyncio.Task[None]] = set()


def apply() -> None:
    """Idempotent: both changes of this module."""
    apply_head_with_body()
    apply_stop_idle_on_eof()


def apply_head_with_body() -> None:
    """Idempotent: wrap `H11Protocol._send_h11_event` so a response head waits for the next
    write of the same turn of the loop and leaves with it."""
    if getattr(H11Protocol, _HEAD_PATCHED, False):
        return
    original: Callable[[Any, Any], Awaitable[None]] = H11Protocol._send_h11_event

    async def send_head_with_body(self: Any, event: Any) -> None:
        held: bytes | None = getattr(self, _HELD, None)
        if type(event) is h11.Response and held is None:
            try:
                head = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
                return
            setattr(self, _HELD, head)
            # Nothing more this turn: the head goes alone on the next one.
            asyncio.get_running_loop().call_soon(_flush_later, self)
            return
        if held is None:
            await original(self, event)
            return
        setattr(self, _HELD, None)
        try:
            data = self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            data = b""
        await self.send(RawData(data=held + data))

    H11Protocol._send_h11_event = send_head_with_body  # type: ignore[method-assign]
    setattr(H11Protocol, _HEAD_PATCHED, True)


def _flush_later(protocol: Any) -> None:
    """A head still held after its turn: write it (the task takes it only when it runs, so a
    write that comes first carries it, and the order of the bytes holds)."""
    if getattr(protocol, _HELD, None) is not None:
        task = asyncio.get_running_loop().create_task(_flush(protocol))
        _FLUSHES.add(task)
        task.add_done_callback(_FLUSHES.discard)


async def _flush(protocol: Any) -> None:
    held: bytes | None = getattr(protocol, _HELD, None)
    if held is not None:
        setattr(protocol, _HELD, None)
        await protocol.send(RawData(data=held))


def apply_stop_idle_on_eof() -> None:
    """Idempotent: wrap `TCPServer._read_data` so the idle task stops when the peer is gone."""
    if getattr(TCPServer, _PATCHED, False):
        return
    original: Callable[[Any], Awaitable[None]] = TCPServer._read_data

    async def read_data_then_stop_idle(self: Any) -> None:
        await original(self)
        # The read side is over (EOF, reset or read timeout): nothing more will arrive, so
        # the idle timer has nothing left to wait for. A request still running keeps its own
        # task and finishes; only the idle wait ends.
        await self.idle_task.stop()

    TCPServer._read_data = read_data_then_stop_idle  # type: ignore[method-assign]
    setattr(TCPServer, _PATCHED, True)
