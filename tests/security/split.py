"""A guardian and a sandbox started as separate processes, as systemd's units run them.

Unlike the supervisor's stack, nothing restarts a process here, so a test can hold the
guardian down, and the sandbox can be handed a listening socket (socket activation).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

import httpx

from tests.helpers import ROOT, GuardianProcess, base_env, free_port, wait_for_healthz


class SandboxProcess:
    """`python -m sandbox` beside a `GuardianProcess`, optionally on an inherited socket."""

    def __init__(
        self,
        guardian: GuardianProcess,
        *,
        listen_on: str = "127.0.0.1",
        inherit: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.guardian = guardian
        self.port = free_port()
        self.log_path = guardian.dir / "sandbox.log"
        self.env = base_env(
            {
                "HUB_CONFIG": str(guardian.config),
                "HUB_RUNTIME_DIR": str(guardian.runtime),
                "HUB_PORT": str(self.port),
                "PYTHONPATH": str(ROOT),
                **(env or {}),
            }
        )
        self.listen_on = listen_on
        self.inherit = inherit
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SandboxProcess:
        log = self.log_path.open("ab")
        if self.inherit:
            # As systemd does: the socket at fd 3 and LISTEN_PID naming the service's pid.
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.listen_on, self.port))
            listener.listen()
            fd = listener.fileno()
            command = f"exec 3<&{fd}; LISTEN_PID=$$ exec {sys.executable} -m sandbox"
            self.process = subprocess.Popen(
                ["bash", "-c", command],
                env={**self.env, "LISTEN_FDS": "1"},
                pass_fds=(fd,),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            listener.close()
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox"],
                env={**self.env, "HUB_HOST": self.listen_on},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        log.close()
        return self

    def wait_linked(self, timeout: float = 30.0) -> None:
        """Until /healthz says the guardian answers."""
        wait_for_healthz(self.url, self.process, self.logs, "sandbox", timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def orphaned_sandbox() -> Iterator[SandboxProcess]:
    """A linked sandbox whose guardian was then killed and is never restarted; yielded once
    the sandbox has noticed (its /healthz answers 503)."""
    guardian = GuardianProcess().start()
    sandbox = SandboxProcess(guardian).start()
    try:
        sandbox.wait_linked()
        assert guardian.process is not None
        guardian.process.kill()
        guardian.process.wait()
        deadline = time.monotonic() + 10
        while httpx.get(f"{sandbox.url}/healthz", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, sandbox.logs()
            time.sleep(0.02)
        yield sandbox
    finally:
        sandbox.stop()
        guardian.stop()
