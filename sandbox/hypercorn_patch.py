"""A peer that closes an idle connection frees its socket at once, not after the idle timeout.

hypercorn 0.18 (asyncio) reads EOF on a connection with no request in progress, leaves its
read loop, and then waits for the connection's idle-timeout task before closing the socket:
a client that connects and hangs up costs the sandbox a descriptor for `idle_timeout_s` (75 s
by default), so connecting and closing ~300 times a second exhausts a 20,000-descriptor limit
(found by tests/reliability/test_floods.py). Patched here because the fix is one call where the
read loop ends, and there is no setting for it; remove when hypercorn stops the idle task on
EOF itself (the test then still passes without this module).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.asyncio.tcp_server import TCPServer

_PATCHED = "_sealgate_stops_idle_on_eof"


def apply() -> None:
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
