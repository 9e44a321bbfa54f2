"""The two children: how each is started, stopped and restarted.

Every child interpreter starts isolated (`python -I`): no user site, no `PYTHON*` variable,
no script directory on `sys.path`. Nothing the sandbox writes (a `.pth` in a user site, a
`sitecustomize.py` in a directory of its own) can run at its next start, before its
protections; each entry script puts the project on `sys.path` itself. The sandbox's
environment is built from an explicit list of names, never a prefix.

Like supervisord's process states: a child that dies is restarted with exponential backoff;
the backoff resets after a healthy run and gives up after `MAX_FAILED_STARTS`, and a child
exiting with EX_CONFIG cannot boot with this configuration, so it is not restarted at all.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from protocol.environment import SANDBOX_ENV_ALLOWLIST
from protocol.runtime import RuntimeLayout
from protocol.workers import sandbox_workers
from supervise import ISOLATED, NO_SITE, PROJECT_ROOT
from supervise.outcomes import EX_CONFIG
from supervise.users import Identity

STOP_GRACE_S = 8.0
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 10.0
HEALTHY_RUN_S = 10.0
MAX_FAILED_STARTS = 8
PR_SET_PDEATHSIG = 1
#: The sandbox's HOME: nothing it can write, so no user site or dotfile of its making.
SANDBOX_HOME = "/nonexistent"

logger = logging.getLogger("sealgate.supervisor")


class State(enum.Enum):
    STOPPED = "stopped"  # not started yet, or stopped on purpose
    RUNNING = "running"  # a process is alive
    BACKOFF = "backoff"  # died; waiting before the next start
    FATAL = "fatal"  # cannot boot or failed too often; the supervisor stops


@dataclass(slots=True)
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    identity: Identity
    drop_privileges: bool
    process: subprocess.Popen[bytes] | None = None
    state: State = State.STOPPED
    failed_starts: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    #: Descriptors it inherits (the guardian: its end of the upstream launcher, root mode).
    pass_fds: tuple[int, ...] = ()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def login_env(identity: Identity, home: Path | str) -> dict[str, str]:
    """HOME, USER and LOGNAME of the user a child runs as, as `runuser` sets them: a guardian
    started from a root shell must not look for its files (asyncpg's ~/.postgresql) in /root.
    The guardian's HOME is its own directory; the sandbox's is `SANDBOX_HOME`, nowhere it
    can write."""
    return {"HOME": str(home), "USER": identity.name, "LOGNAME": identity.name}


def entry_argv(package: str) -> list[str]:
    """`python -I <project>/<package>/__main__.py`: isolated, and the script itself puts the
    project on sys.path (no PYTHONPATH, no package installed in a shared venv).

    The sandbox also starts without `site` (-S): no `.pth` file of any installed package
    runs before its protections (a poisoned release may ship one); `sandbox/__main__.py`
    puts the site-packages directories on sys.path without reading their `.pth` files."""
    flags = [ISOLATED, NO_SITE] if package == "sandbox" else [ISOLATED]
    return [sys.executable, *flags, str(PROJECT_ROOT / package / "__main__.py")]


def without_python_vars(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without PYTHON* variables: -I ignores them, and no child needs to see them."""
    return {name: value for name, value in env.items() if not name.startswith("PYTHON")}


def build_children(
    environ: Mapping[str, str],
    *,
    config_path: Path,
    env_file: Path,
    layout: RuntimeLayout,
    guardian_id: Identity,
    sandbox_id: Identity,
) -> list[Child]:
    """The guardian, then the sandbox (`HUB_SANDBOX_WORKERS` of them, named `sandbox-1`...
    when more than one): their command lines, users and environments."""
    two_uids = guardian_id.uid != sandbox_id.uid
    common = {
        "HUB_CONFIG": str(config_path),
        "HUB_RUNTIME_DIR": str(layout.root),
    }
    if layout.data_root is not None:
        common["HUB_DATA_DIR"] = str(layout.data_root)
    guardian_env = without_python_vars(environ)
    guardian_env.update(common)
    guardian_env["HUB_ENV_FILE"] = str(env_file)
    guardian_env["HUB_SANDBOX_UID"] = str(sandbox_id.uid)
    guardian_env.update(login_env(guardian_id, layout.guardian_dir))
    # The sandbox's environment: an explicit list of names, never a prefix.
    sandbox_env = {name: environ[name] for name in SANDBOX_ENV_ALLOWLIST if name in environ}
    sandbox_env = without_python_vars(sandbox_env)
    sandbox_env.pop("LISTEN_FDS", None)
    sandbox_env.pop("LISTEN_PID", None)
    sandbox_env.update(common)
    sandbox_env.update(login_env(sandbox_id, SANDBOX_HOME))
    sandbox_env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    workers = sandbox_workers(environ)
    names = ["sandbox"] if workers == 1 else [f"sandbox-{i}" for i in range(1, workers + 1)]
    return [
        Child("guardian", entry_argv("guardian"), guardian_env, guardian_id, two_uids),
        *(
            Child(name, entry_argv("sandbox"), dict(sandbox_env), sandbox_id, two_uids)
            for name in names
        ),
    ]


def _set_parent_death_signal() -> None:
    """Runs in the child before exec: die with the supervisor rather than linger."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(child: Child) -> None:
    drop = child.drop_privileges
    child.process = subprocess.Popen(
        child.argv,
        env=child.env,
        cwd="/",
        umask=0o077,
        preexec_fn=_set_parent_death_signal,
        # a process group of its own: Ctrl-C at a terminal reaches the supervisor alone,
        # which stops the children in order (they die with it all the same)
        process_group=0,
        user=child.identity.uid if drop else None,
        group=child.identity.gid if drop else None,
        extra_groups=[] if drop else None,
        pass_fds=child.pass_fds,
    )
    child.state = State.RUNNING
    child.started_at = time.monotonic()
    logger.info("%s started (pid %d, uid %d)", child.name, child.process.pid, child.identity.uid)


def schedule_restart(child: Child, status: int, ran: float) -> None:
    """After `child` exited with `status` having run `ran` seconds: back off before its
    next start, or give up (FATAL) when it cannot boot or failed too often."""
    if status == EX_CONFIG:
        logger.error("%s cannot boot with this configuration (exit %d)", child.name, status)
        child.state = State.FATAL
        return
    if ran >= HEALTHY_RUN_S:
        child.failed_starts = 0
    child.failed_starts += 1
    if child.failed_starts > MAX_FAILED_STARTS:
        logger.error("%s failed %d times in a row; giving up", child.name, MAX_FAILED_STARTS)
        child.state = State.FATAL
        return
    delay = min(BACKOFF_INITIAL_S * 2 ** (child.failed_starts - 1), BACKOFF_MAX_S)
    how = f"signal {-status}" if status < 0 else f"status {status}"
    logger.warning(
        "%s exited with %s after %.1f s; restarting in %.1f s", child.name, how, ran, delay
    )
    child.state = State.BACKOFF
    child.restart_at = time.monotonic() + delay


def stop(child: Child) -> None:
    """SIGTERM, a grace period, SIGKILL, reap."""
    process = child.process
    if process is None:
        return
    logger.info("stopping %s (pid %d)", child.name, process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop within %.0f s; killing it", child.name, STOP_GRACE_S)
        process.kill()
        process.wait()
    logger.info("%s stopped (status %s)", child.name, process.returncode)
    child.state = State.STOPPED
    child.process = None
