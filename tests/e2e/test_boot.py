"""Whole-stack boot: a failure that another try cannot cure stops the supervisor at once
with exit 78; each child gets the HOME, USER and LOGNAME of its own user."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import PYTHON, ROOT, GuardianProcess, Stack, first_healthz, two_uid_possible

REASON = two_uid_possible()
needs_two_uids = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_port_in_use_stops_the_stack_with_78_at_once(
    stack_factory: Callable[..., Stack],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        stack = stack_factory(env={"HUB_PORT": str(port)}, wait=False)
        assert stack.process is not None
        assert stack.process.wait(timeout=60) == 78, stack.logs()
        assert time.monotonic() - started < 15
        logs = stack.logs()
        assert f"cannot listen on 127.0.0.1:{port}" in logs
        assert "restarting in" not in logs and "Traceback" not in logs


def test_each_child_gets_home_user_and_logname_of_its_own_user(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(env={"HOME": "/root", "USER": "root", "LOGNAME": "root"})
    guardian, sandbox = _environ(stack.pid_of("guardian")), _environ(stack.pid_of("sandbox"))
    assert guardian["HOME"] == str(stack.runtime.resolve() / "guardian")
    # the sandbox's HOME is nowhere it can write: no user site or dotfile of its making
    assert sandbox["HOME"] == "/nonexistent"
    for environ, name in ((guardian, "guardian"), (sandbox, "sandbox")):
        owner = Path(f"/proc/{stack.pid_of(name)}").stat().st_uid
        import pwd

        user = pwd.getpwuid(owner).pw_name
        assert environ["USER"] == environ["LOGNAME"] == user


@needs_two_uids
def test_a_root_shell_home_does_not_break_postgresql(
    stack_factory: Callable[..., Stack], pg_database: str
) -> None:
    """Started from a root shell (HOME=/root, 0700), asyncpg looked for its client files
    in /root, got EACCES, and the guardian exited in a loop."""
    stack = stack_factory(env={"HOME": "/root", "DATABASE_URL": pg_database})
    assert "database postgresql:" in stack.logs()
    assert stack.stop() == 0


def test_a_clean_stop_removes_its_sockets_and_warns_of_nothing(
    stack_factory: Callable[..., Stack],
) -> None:
    for _ in range(2):
        stack = stack_factory()
        assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
        admin, sandbox_socket = (
            stack.runtime / "guardian/admin.sock",
            stack.runtime / "run/guardian.sock",
        )
        assert admin.exists() and sandbox_socket.exists()
        time.sleep(0.5)  # the sandbox's link is up
        assert stack.stop() == 0
        stopping = stack.logs().split("received SIGTERM", 1)[1]
        assert " WARNING " not in stopping and " ERROR " not in stopping, stopping
        assert not admin.exists() and not sandbox_socket.exists()


def test_a_guardian_stopped_alone_removes_its_sockets(guardian: GuardianProcess) -> None:
    assert guardian.process is not None
    guardian.process.send_signal(signal.SIGTERM)
    assert guardian.process.wait(timeout=15) == 0
    assert not guardian.socket_path.exists() and not guardian.admin_path.exists()
    assert " WARNING " not in guardian.logs().split("guardian stopping", 1)[1]


def test_the_supervisor_hello_probe_speaks_the_protocol(
    guardian: GuardianProcess, tmp_path: Path
) -> None:
    from supervise.hello import guardian_answers

    assert guardian_answers(guardian.admin_path)
    assert not guardian_answers(tmp_path / "nothing.sock")


def test_ctrl_c_at_a_terminal_stops_the_children_in_order() -> None:
    """SIGINT to the whole foreground process group, as a terminal sends it: the children
    stop when the supervisor tells them, sandbox first, so nothing looks like a lost link."""
    stack = Stack()
    try:
        log = stack.log_path.open("ab")
        stack.process = subprocess.Popen(
            [PYTHON, str(ROOT / "supervisor.py")],
            env=stack.env,
            cwd=stack.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell's job
        )
        log.close()
        stack.wait_healthy()
        time.sleep(0.5)
        os.killpg(stack.process.pid, signal.SIGINT)
        assert stack.process.wait(timeout=30) == 0
        stopping = stack.logs().split("received SIGINT", 1)[1]
        assert "guardian stopping" in stopping and "stopping guardian" in stopping, stack.logs()
        assert stopping.index("stopping guardian") < stopping.index("guardian stopping")
        assert " WARNING " not in stopping and " ERROR " not in stopping
    finally:
        stack.cleanup()


def test_a_sandbox_started_before_its_guardian_serves_once_the_guardian_answers() -> None:
    """The supervisor starts both at once: the sandbox listens at once but answers only once
    its guardian does, so the first answer a client gets is not a 503."""
    from tests.security.split import SandboxProcess

    guardian = GuardianProcess()
    sandbox = SandboxProcess(guardian).start()
    try:
        time.sleep(2.0)  # the sandbox has listened, imported, and waits for its guardian
        guardian.start()
        assert sandbox.process is not None
        first = first_healthz(sandbox.url, sandbox.process)
        assert first.status_code == 200, (first.text, sandbox.logs())
        assert "has not answered" not in sandbox.logs()
    finally:
        sandbox.stop()
        guardian.stop()
