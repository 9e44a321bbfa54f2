"""Connecting and hanging up must not cost the sandbox a descriptor for the idle timeout.

The attack: open TCP connections to the gateway and close them at once, a few hundred a
second. hypercorn kept each closed, idle connection's socket until `idle_timeout_s` (75 s by
default) ran out, so ~300 connects a second exhausted a 20,000-descriptor limit and the
gateway stopped accepting anyone (sandbox/hypercorn_patch.py). Found by the reliability
suite's 10,000-connection flood, together with hypercorn's own accept backlog of 100, which
silently stalled bursts of connects (sandbox/main.py now listens with 4,096).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx

from tests.helpers import Stack
from tests.reliability.procstat import open_fds

CHURN = 400


def test_connections_closed_by_the_client_are_released_at_once(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(config_text='[HUB]\nidle_timeout_s = "600"\n[HUB_END]\n')
    sandbox = stack.pid_of("sandbox")
    base = open_fds(sandbox)
    held: list[socket.socket] = []
    try:
        held.extend(socket.create_connection(("127.0.0.1", stack.port)) for _ in range(CHURN))
        deadline = time.monotonic() + 30
        # (a little slack: `base` may have counted a descriptor the sandbox closed since)
        while open_fds(sandbox) < base + CHURN - 20:
            assert time.monotonic() < deadline, (
                f"the sandbox accepted {open_fds(sandbox) - base} of a burst of {CHURN}"
            )
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5  # far less than the 600 s idle timeout
    while open_fds(sandbox) > base + 10:
        assert time.monotonic() < deadline, f"{open_fds(sandbox) - base} sockets still held"
        time.sleep(0.05)
    assert httpx.get(f"{stack.url}/healthz", timeout=10).status_code == 200
