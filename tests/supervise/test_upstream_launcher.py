"""The supervisor's launcher of stdio upstream MCP servers (root mode), over a real socket
pair: the guardian names a configured stdio server and gets its pipes; nothing else starts,
and the program gets only the variables its block names, under the upstream user."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervise.upstreams import UpstreamLauncher
from tests.helpers import EXAMPLE_CONFIG, make_workdir, two_uid_possible

BLOCKS = """[MCP_SERVER.printenv]
command = "/usr/bin/env"
env_key = "PRINTENV_KEY"
env = "PRINTENV_LEVEL"
[MCP_SERVER.printenv_END]
[MCP_SERVER.remote]
url = "https://mcp.example.org/mcp"
[MCP_SERVER.remote_END]
"""


@pytest.fixture
def launcher() -> Iterator[tuple[UpstreamLauncher, socket.socket]]:
    directory = make_workdir("sealgate-launcher-")
    config = directory / ".pyfun"
    config.write_text(EXAMPLE_CONFIG.read_text() + BLOCKS)
    config.chmod(0o644)
    launcher = UpstreamLauncher(config, {})
    env: dict[str, str] = {}
    (fd,) = launcher.hand_out(env)
    guardian = socket.socket(fileno=os.dup(fd))
    launcher.handed()
    assert env == {"HUB_UPSTREAM_LAUNCHER_FD": str(fd)}
    try:
        yield launcher, guardian
    finally:
        guardian.close()
        launcher.close()
        shutil.rmtree(directory, ignore_errors=True)


def ask(
    launcher: UpstreamLauncher, guardian: socket.socket, request: Any
) -> tuple[dict[str, Any], list[int]]:
    guardian.send(json.dumps(request).encode())
    launcher.serve()
    data, fds, _, _ = socket.recv_fds(guardian, 65536, 3)
    return json.loads(data), fds


def test_only_a_configured_stdio_server_is_started(
    launcher: tuple[UpstreamLauncher, socket.socket],
) -> None:
    supervisor, guardian = launcher
    for request in (
        {"id": 1, "op": "start", "name": "nope", "env": {}},
        {"id": 2, "op": "start", "name": "remote", "env": {}},  # a URL: the guardian's own
        {"id": 4, "op": "exec", "name": "printenv"},
        {"id": 5, "op": "start"},
    ):
        reply, fds = ask(supervisor, guardian, request)
        assert reply["id"] == request["id"] and reply["ok"] is False and fds == [], reply
    reply, fds = ask(supervisor, guardian, "not an object")
    assert reply == {"ok": False, "error": "malformed request"} and fds == []


@pytest.mark.e2e  # starts the program for real, as root
def test_the_program_gets_its_blocks_variables_only_under_the_upstream_user(
    launcher: tuple[UpstreamLauncher, socket.socket],
) -> None:
    reason = two_uid_possible()
    if reason is not None:
        pytest.skip(reason)
    supervisor, guardian = launcher
    offered = {"PRINTENV_KEY": "k-123", "PRINTENV_LEVEL": "debug", "LD_PRELOAD": "/tmp/x.so"}
    request = {"id": 7, "op": "start", "name": "printenv", "env": offered, "command": "/bin/sh"}
    reply, fds = ask(supervisor, guardian, request)  # the block's command, not "/bin/sh"
    assert reply["ok"] is True and len(fds) == 3, reply
    stdin, stdout, stderr = (os.fdopen(fd, mode) for fd, mode in zip(fds, "wrr", strict=True))
    stdin.close()
    printed = stdout.read()
    stdout.close()
    assert "contained:" in stderr.read()
    stderr.close()
    variables = dict(line.split("=", 1) for line in printed.splitlines())
    assert variables == {
        "PRINTENV_KEY": "k-123",
        "PRINTENV_LEVEL": "debug",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    assert supervisor.identity is not None and supervisor.identity.name == "hub-upstream"
    assert supervisor.identity.uid not in (0, os.getuid())
    status = Path(f"/proc/{reply['pid']}/status")
    if status.exists():
        uid_line = next(x for x in status.read_text().splitlines() if x.startswith("Uid:"))
        assert int(uid_line.split()[1]) == supervisor.identity.uid


def test_the_guardians_end_closing_ends_its_programs(
    launcher: tuple[UpstreamLauncher, socket.socket],
) -> None:
    supervisor, guardian = launcher
    guardian.close()
    supervisor.serve()
    assert supervisor.programs == {} and supervisor.pids() == set()
