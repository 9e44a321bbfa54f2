"""Real processes for tests: a guardian alone, or the whole stack under the supervisor."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
EXAMPLE_CONFIG = ROOT / ".pyfun"
FAKE_SECRET = "fake-ant-secret-value-0123456789abcdef"

#: The variables a test process passes on to the stack; everything else is left out so a
#: developer's own keys never reach a test.
PASS_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
#: Settings every test stack gets unless a test overrides them: PBKDF2 at its documented
#: test-only cost, so logins stay fast (the default, 600,000 rounds, has a test of its own).
TEST_SETTINGS = {"SEALGATE_PBKDF2_ROUNDS": "1000"}


#: What a real sandbox listening on loopback says in `hello` (the guardian then allows open
#: mode); for tests that play the sandbox on its socket.
LOOPBACK_SANDBOX_HELLO = {"listen": ["127.0.0.1"]}


async def rpc_as_sandbox(socket_path: Path | str, timeout: float = 10) -> RPCClient:
    """An RPC client on a guardian.sock, connected past its hello as a sandbox listening on
    loopback (the caller closes it)."""

    async def connect() -> SocketChannel:
        return await open_unix_channel(str(socket_path))

    client = RPCClient(connect, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    client.start()
    assert await client.wait_connected(timeout)
    return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: Every directory `make_workdir` made in this test session; the session fails if one is
#: left behind (tests/conftest.py), so `make test` leaves /tmp as it found it.
WORKDIRS: list[Path] = []


def make_workdir(prefix: str) -> Path:
    """A temp dir every service user can traverse (pytest's tmp_path is 0700). Whoever makes
    one removes it (the `scratch` fixture does it for plain tests)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    WORKDIRS.append(path)
    return path


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASS_ENV if name in os.environ}
    env.update(TEST_SETTINGS)
    env.update(extra or {})
    return env


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def uid_of(pid: int, field: str = "Uid") -> int:
    """A process's real uid (/proc/<pid> itself belongs to root when it is not dumpable)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} line for pid {pid}")


def gid_of(pid: int) -> int:
    return uid_of(pid, "Gid")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def first_healthz(
    url: str, process: subprocess.Popen[bytes], timeout: float = 30.0
) -> httpx.Response:
    """The first answer `url`/healthz gives, whatever it is: tried again only while nothing
    listens yet, then waited for (a sandbox may listen before it answers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"{url}/healthz", timeout=timeout)
        except httpx.ConnectError:
            assert time.monotonic() < deadline, f"nothing listened on {url} within {timeout} s"
            assert process.poll() is None, "the process exited before it listened"
            time.sleep(0.05)


def wait_for_healthz(
    url: str,
    process: subprocess.Popen[bytes] | None,
    logs: Callable[[], str],
    what: str,
    timeout: float = 30.0,
) -> None:
    """Until `url`/healthz answers 200 (the guardian is linked); fail if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what} exited early:\n{logs()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what} not healthy within {timeout} s:\n{logs()}")


class Stack:
    """The real supervisor with its guardian and sandbox, in a directory of its own."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        config_text: str | None = None,
        single_uid: bool | None = None,
        python: str = PYTHON,
    ) -> None:
        #: The interpreter the supervisor runs under (and so its children).
        self.python = python
        if single_uid is None:
            # Two uids where this machine allows them (root, a checkout others can read);
            # otherwise both processes share one, and the two-uid tests say why they skip.
            single_uid = two_uid_possible() is not None
        self.dir = make_workdir("sealgate-stack-")
        self.port = free_port()
        self.config = self.dir / ".pyfun"
        self.config.write_text(
            config_text if config_text is not None else EXAMPLE_CONFIG.read_text()
        )
        self.config.chmod(0o644)
        self.runtime = self.dir / "var"
        self.log_path = self.dir / "stack.log"
        self.env = base_env(
            {
                "HUB_CONFIG": str(self.config),
                "HUB_RUNTIME_DIR": str(self.runtime),
                "HUB_ENV_FILE": str(self.dir / ".env"),
                "HUB_PORT": str(self.port),
                # A lock directory per stack: stacks of parallel test runs never collide.
                "HUB_LOCK_DIR": str(self.dir / "locks"),
                **({"HUB_SINGLE_UID": "1"} if single_uid else {}),
                **(env or {}),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Stack:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.python, "-I", str(ROOT / "supervisor.py")],
            env=self.env,
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_for_healthz(self.url, self.process, self.logs, "supervisor", timeout)

    def pid_of(self, name: str) -> int:
        """The pid of the supervisor's `guardian` or `sandbox` child."""
        pids = self.pids_of(name)
        if not pids:
            raise AssertionError(f"no {name} process under the supervisor")
        return pids[0]

    def pids_of(self, name: str) -> list[int]:
        """Every live child of the supervisor running `name` (`HUB_SANDBOX_WORKERS` sandboxes)."""
        assert self.process is not None
        found = []
        for pid in children_of(self.process.pid):
            command = cmdline(pid)
            # the supervisor runs `python -I <project>/<name>/__main__.py`
            if f"-m {name}" in command or f"/{name}/__main__.py" in command:
                found.append(pid)
        return found

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 12.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"supervisor did not stop within {timeout} s") from None
        return code

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class GuardianProcess:
    """A guardian started directly, as the current user, for protocol-level tests."""

    def __init__(self, config_text: str | None = None, env: Mapping[str, str] | None = None):
        self.dir = make_workdir("sealgate-guardian-")
        self.runtime = self.dir / "var"
        for sub in ("guardian", "run", "sandbox"):
            (self.runtime / sub).mkdir(parents=True, mode=0o700)
        self.config = self.dir / ".pyfun"
        self.config.write_text(
            config_text if config_text is not None else EXAMPLE_CONFIG.read_text()
        )
        self.log_path = self.dir / "guardian.log"
        self.env = base_env(
            {
                "HUB_CONFIG": str(self.config),
                "HUB_RUNTIME_DIR": str(self.runtime),
                "HUB_ENV_FILE": str(self.dir / ".env"),
                "PYTHONPATH": str(ROOT),
                **(env or {}),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.runtime / "run" / "guardian.sock"

    @property
    def admin_path(self) -> Path:
        return self.runtime / "guardian" / "admin.sock"

    def start(self) -> GuardianProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "guardian"],
            env=self.env,
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while not self.socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"guardian did not start:\n{self.logs()}")
            time.sleep(0.05)
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if os.environ.get("SEALGATE_TEST_SHOW_LOGS"):
            print(self.logs())
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def two_uid_possible() -> str | None:
    """None when a two-uid stack can run here; otherwise the reason it cannot."""
    if os.geteuid() != 0:
        return "not root: two-uid isolation needs root to drop privileges (CI runs as root)"
    from supervise.users import Identity, may_access

    nobody = Identity("nobody", 65534, 65534)
    for path in (ROOT / "supervisor.py", Path(sys.executable).resolve(), Path(httpx.__file__)):
        if not may_access(path, nobody, 0o4):
            return f"{path} is not readable by other users (checkout under a 0700 home?)"
    return None


def run_ctl(admin_socket: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The operator CLI against one guardian's admin socket, as an operator would run it."""
    return subprocess.run(
        [PYTHON, "-m", "guardian.ctl", "--socket", str(admin_socket), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
