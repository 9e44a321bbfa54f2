"""Connections to guardian.sock: a compromised sandbox opened 200 of them and the guardian
grew by 39 MB. `[HUB_LIMITS] max_sandbox_connections` caps them (the default leaves room for
several sandbox worker processes); beyond it a connection is refused at once and a security
event is logged, and a connection that ends makes room again."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.pyfun import HubLimitsConfig, parse
from tests.helpers import GuardianProcess

CAP = 3


def test_the_default_leaves_room_for_several_workers_and_the_key_is_read() -> None:
    assert 8 <= HubLimitsConfig().max_sandbox_connections <= 64
    text = '[HUB_LIMITS]\nmax_sandbox_connections = "5"\n[HUB_LIMITS_END]\n'
    assert parse(text).hub_limits.max_sandbox_connections == 5
    bad = '[HUB_LIMITS]\nmax_sandbox_connections = "0"\n[HUB_LIMITS_END]\n'
    with pytest.raises(Exception, match="max_sandbox_connections"):
        parse(bad)


@pytest.fixture(scope="module")
def guardian() -> Iterator[GuardianProcess]:
    config = f'[HUB_LIMITS]\nmax_sandbox_connections = "{CAP}"\n[HUB_LIMITS_END]\n'
    process = GuardianProcess(config_text=config).start()
    yield process
    process.stop()


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    sock.settimeout(1.0)
    return sock


def refused(sock: socket.socket) -> bool:
    """The guardian closed it at once (EOF), rather than waiting for a hello."""
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_connections_past_the_cap_are_refused_and_logged(guardian: GuardianProcess) -> None:
    kept = [connect(guardian.socket_path) for _ in range(CAP)]
    flood = [connect(guardian.socket_path) for _ in range(200)]
    try:
        assert not any(refused(sock) for sock in kept)
        assert all(refused(sock) for sock in flood)
        logs = guardian.logs()
        assert "max_sandbox_connections" in logs, logs[-2000:]
        # one line for the flood, not one per connection
        assert logs.count("max_sandbox_connections") < 10
        # a connection that ends makes room for another
        kept.pop().close()
        deadline = time.monotonic() + 5
        while True:
            again = connect(guardian.socket_path)
            if not refused(again):
                kept.append(again)
                break
            again.close()
            assert time.monotonic() < deadline, "no room after a connection ended"
            time.sleep(0.1)
    finally:
        for sock in kept + flood:
            sock.close()
