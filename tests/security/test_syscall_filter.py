"""Beyond TCP: UDP (DNS to a public resolver), raw, packet and netlink sockets, io_uring and
signals to other processes are closed to code running as the sandbox, in every run mode,
while the Unix sockets it needs stay open.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.selfsandbox import landlock_abi
from tests.security.conftest import Deployment


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that would accept a connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_only_unix_and_tcp_sockets_and_tcp_is_landlocked(
    deployment: Deployment, listener: int, landlock: bool
) -> None:
    out = deployment.attack(
        landlock=landlock,
        sockets=True,
        tcp_port=listener,
        unix=[str(deployment.guardian_socket)],
    )
    # seccomp, whatever Landlock offers
    for name in ("udp", "udp6", "udp dns", "raw", "sctp", "io_uring"):
        assert out[name] == "EPERM", (name, out)
    for name in ("packet", "netlink"):
        assert out[name] == "EAFNOSUPPORT", (name, out)
    assert out["unix dgram"] == "ok", out
    assert out[f"unix {str(deployment.guardian_socket)!r}"] == "ok", out
    if landlock and landlock_abi() >= 4:
        assert out["tcp"] == "EACCES", out
    if not landlock:
        assert out["tcp"] == "ok", out  # what remains on a kernel without Landlock


def test_no_signal_leaves_the_sandbox(deployment: Deployment) -> None:
    if landlock_abi() < 6:
        pytest.skip(f"Landlock ABI {landlock_abi()} < 6 has no signal scoping")
    stack = deployment.stack
    assert stack.process is not None
    targets = [stack.pid_of("guardian"), stack.process.pid]
    out = deployment.attack(signal=targets)
    for pid in targets:
        assert out[f"signal {pid}"] == "EPERM", out
    unscoped = deployment.attack(landlock=False, signal=targets)
    if deployment.mode == "one-uid":
        # the same uid may signal its own processes once Landlock is withheld
        assert unscoped[f"signal {targets[0]}"] == "ok", unscoped


def test_the_real_sandbox_has_the_filter(deployment: Deployment) -> None:
    status = Path(f"/proc/{deployment.stack.pid_of('sandbox')}/status").read_text()
    assert "Seccomp:\t2" in status
    assert "seccomp socket filter on" in deployment.stack.logs()
