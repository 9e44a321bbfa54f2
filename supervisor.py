"""SealGate's supervisor: starts the guardian, then the sandbox, and keeps both running.

    python supervisor.py          (what `make run` and the Docker entrypoint do)

It reads HUB_CONFIG (default ./.pyfun), HUB_ENV_FILE (./.env), HUB_RUNTIME_DIR (./var),
HUB_HOST/HUB_PORT, HUB_SINGLE_UID, HUB_GUARDIAN_USER (hub-guardian) and HUB_SANDBOX_USER
(hub-sandbox), so several instances can run side by side from any working directory.

Like gunicorn's arbiter, signal handlers only queue the signal; the main loop drains the
queue and acts. SIGTERM and SIGINT stop both children (SIGTERM, a grace period, SIGKILL) and
exit 0; SIGHUP re-checks secret file permissions and is forwarded to the guardian, which
reloads. A child that dies is restarted with exponential backoff; the backoff resets after a
healthy run and gives up after `MAX_FAILED_STARTS`. A child exiting with EX_CONFIG (78)
cannot boot with this configuration, so the supervisor stops instead of crash-looping.

Run as root, the guardian and the sandbox run as two unprivileged users (created with
`useradd --system` if missing); the sandbox gets an environment built from an explicit list
of names and cannot read the guardian's files.

Every child interpreter starts isolated (`python -I`): no user site, no `PYTHON*` variable,
no script directory on `sys.path`. Nothing the sandbox writes (a `.pth` in a user site, a
`sitecustomize.py` in a directory of its own) can run at its next start, before its
protections; each entry script puts the project on `sys.path` itself.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import fcntl
import grp
import logging
import os
import pwd
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# `python -I supervisor.py` (the image, the Makefile) puts no script directory on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from protocol import PROTOCOL_VERSION, __version__
from protocol.adminaddr import connect_admin
from protocol.environment import SANDBOX_ENV_ALLOWLIST
from protocol.errors import ProtocolError
from protocol.framing import FrameDecoder, encode
from protocol.messages import Response, request
from protocol.messages import parse as parse_message
from protocol.pyfun import PyfunError, parse, with_env_overrides
from protocol.runtime import RuntimeLayout
from protocol.sandboxpaths import exposing

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_CONFIG = 78  # sysexits.h: "cannot boot with this configuration"

PROJECT_ROOT = Path(__file__).resolve().parent
GUARDIAN_HELLO_TIMEOUT_S = 30.0
STOP_GRACE_S = 8.0
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 10.0
HEALTHY_RUN_S = 10.0
MAX_FAILED_STARTS = 8
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: Rounds of `sweep` before giving up on a process tree that keeps forking.
SWEEP_ROUNDS = 50
#: How every child interpreter starts: isolated (no user site, no PYTHON* variables, no
#: script directory on sys.path), running an entry script that bootstraps sys.path itself.
ISOLATED = "-I"
#: The sandbox's too: no `site`, so no `.pth` file runs before its protections.
NO_SITE = "-S"
#: The sandbox's HOME: nothing it can write, so no user site or dotfile of its making.
SANDBOX_HOME = "/nonexistent"

logger = logging.getLogger("sealgate.supervisor")
security_logger = logging.getLogger("sealgate.security")


class Refusal(Exception):
    """The supervisor will not start as things are; the message says what to change."""


class State(enum.Enum):
    STOPPED = "stopped"  # not started yet, or stopped on purpose
    RUNNING = "running"  # a process is alive
    BACKOFF = "backoff"  # died; waiting before the next start
    FATAL = "fatal"  # cannot boot or failed too often; the supervisor stops


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    uid: int
    gid: int

    @classmethod
    def current(cls) -> Identity:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, os.getgid())


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

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


# -- users and permissions ---------------------------------------------------------------


def ensure_user(name: str) -> Identity:
    """Return the system user `name`, creating it (no login shell, no home) if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        logger.info("creating system user %s", name)
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return Identity(name, entry.pw_uid, entry.pw_gid)


def _groups_of(identity: Identity) -> set[int]:
    groups = {identity.gid}
    groups.update(g.gr_gid for g in grp.getgrall() if identity.name in g.gr_mem)
    return groups


def may_access(path: Path, identity: Identity, want: int) -> bool:
    """Whether `identity` (with no supplementary groups but its own) may `want` `path`.

    `want` is a mode bit triple like 0o4 (read). Every parent directory needs search (x).
    """
    if identity.uid == 0:
        return True
    groups = _groups_of(identity)

    def allowed(st: os.stat_result, bits: int) -> bool:
        if st.st_uid == identity.uid:
            return bool(st.st_mode & (bits << 6))
        if st.st_gid in groups:
            return bool(st.st_mode & (bits << 3))
        return bool(st.st_mode & bits)

    path = path.resolve()
    try:
        for parent in reversed(path.parents):
            if not allowed(parent.stat(), 0o1):
                return False
        return allowed(path.stat(), want)
    except OSError:
        return False


def check_code_readable(identity: Identity, python: str) -> None:
    """Prove that `identity` can run our interpreter and import our code."""
    probe = subprocess.run(
        [
            python,
            ISOLATED,
            "-c",
            f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r});"
            " import msgpack, protocol.pyfun",
        ],
        user=identity.uid,
        group=identity.gid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        raise Refusal(
            f"user {identity.name} cannot run {python} or read the code in {PROJECT_ROOT}"
            " (is the checkout or its .venv under a 0700 home such as /root?). Put the"
            " checkout and its virtualenv where both service users can read them, e.g."
            " /opt/sealgate with `chmod -R o+rX /opt/sealgate`, and build the venv from a"
            " system Python (/usr/bin/python3), or set HUB_SINGLE_UID=1 for development only."
        )


def check_secret_files(paths: list[Path], guardian: Identity, sandbox: Identity) -> None:
    """Secret files must be readable by the guardian's user and not by the sandbox's.

    A directory (systemd credentials, Docker's /run/secrets) is checked file by file.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
        elif path.exists():
            files.append(path)
    for path in files:
        if guardian.uid != sandbox.uid and may_access(path, sandbox, 0o4):
            raise Refusal(
                f"{path} is readable by the sandbox user {sandbox.name}; secrets must not be."
                f" Run: chown {guardian.name}:{guardian.name} {path} && chmod 0600 {path}"
            )
        if not may_access(path, guardian, 0o4):
            raise Refusal(
                f"{path} is not readable by the guardian user {guardian.name}."
                f" Run: chown {guardian.name}:{guardian.name} {path} && chmod 0600 {path}"
            )


def prepare_runtime(layout: RuntimeLayout, guardian: Identity, sandbox: Identity) -> None:
    """Create the runtime directories with the owners and modes ARCHITECTURE.md fixes.

    Never through a symbolic link: the sandbox's user owns `sandbox/`, and a root supervisor
    that followed a link planted in its place would chown the link's target (say /etc) to
    that user. Each directory is opened with O_NOFOLLOW|O_DIRECTORY and fixed with
    fchown/fchmod on the descriptor; a link is refused with a message. With `HUB_DATA_DIR`
    the databases' two directories are made under it the same way.
    """
    _prepare_dirs(
        layout.root,
        [
            (layout.guardian_dir, guardian.uid, guardian.gid, 0o700),
            (layout.sandbox_dir, sandbox.uid, sandbox.gid, 0o700),
            # setgid, so guardian.sock created inside belongs to the sandbox's group
            (layout.run_dir, guardian.uid, sandbox.gid, 0o2750),
        ],
        sandbox,
    )
    if layout.data_root is not None:
        _prepare_dirs(
            layout.data_root,
            [
                (layout.guardian_data_dir, guardian.uid, guardian.gid, 0o700),
                (layout.sandbox_data_dir, sandbox.uid, sandbox.gid, 0o700),
            ],
            sandbox,
        )
    if os.geteuid() == 0:
        for directory in dict.fromkeys((layout.guardian_dir, layout.guardian_data_dir)):
            for path in directory.iterdir():
                os.chown(path, guardian.uid, guardian.gid, follow_symlinks=False)


def _prepare_dirs(root: Path, plan: list[tuple[Path, int, int, int]], sandbox: Identity) -> None:
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    root_fd = _open_dir(root, None, str(root))
    try:
        _check_root(root_fd, root, sandbox)
        for directory, uid, gid, mode in plan:
            try:
                os.mkdir(directory.name, mode=0o700, dir_fd=root_fd)
            except FileExistsError:
                pass
            fd = _open_dir(directory, root_fd, directory.name)
            try:
                if os.geteuid() == 0:
                    os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def _open_dir(path: Path, dir_fd: int | None, name: str) -> int:
    """Open a directory without following a link in its last component; refuse a link."""
    try:
        return os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refusal(
                f"{path} is a symbolic link or not a directory; the runtime directory must"
                f" hold real directories only (something may have planted it): remove {path}"
                " and start again"
            ) from None
        raise


def _check_root(fd: int, root: Path, sandbox: Identity) -> None:
    """The runtime root must not let the sandbox's user rename or plant entries in it."""
    st = os.fstat(fd)
    sandbox_owns = sandbox.uid != os.geteuid() and st.st_uid == sandbox.uid
    if st.st_mode & 0o002 or sandbox_owns:
        raise Refusal(
            f"the runtime directory {root} is writable by the sandbox (mode"
            f" {stat.S_IMODE(st.st_mode):o}, owner uid {st.st_uid}); make it owned by the"
            f" supervisor's user and not world-writable: chown {os.geteuid()} {root} &&"
            f" chmod 0755 {root}"
        )


# -- hardening of the supervisor itself ----------------------------------------------------

PR_SET_DUMPABLE = 4
#: Variables whose values are no secret and may stay readable in /proc/<pid>/environ.
KEEP_IN_ENVIRON = frozenset(
    {
        *SANDBOX_ENV_ALLOWLIST,
        "HUB_ENV_FILE",
        "HUB_SINGLE_UID",
        "HUB_GUARDIAN_USER",
        "HUB_SANDBOX_USER",
        "HUB_LOCK_DIR",
        "CREDENTIALS_DIRECTORY",
    }
)


def harden_self() -> str:
    """Not dumpable, and no secret left in the environ block /proc shows.

    Secrets arriving as environment variables (a Space's secrets) sit in the environ of
    every process started before the sandbox. Not dumpable, our /proc/<pid>/environ and
    /mem belong to root and no same-uid process may ptrace us; the values in the original
    environ block are overwritten too, so they are gone from it even for root. The guardian
    still gets them: the supervisor keeps its own copy of the environment.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    dumpable = "not dumpable"
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        dumpable = "DUMPABLE (prctl refused)"
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (fields 50, 51)
    except (OSError, IndexError, ValueError):
        return f"{dumpable}; environ not scrubbed (no /proc/self/stat)"
    if end <= start:
        return f"{dumpable}; environ empty"
    block = ctypes.string_at(start, end - start)
    offset, scrubbed = 0, 0
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and value and name.decode(errors="replace") not in KEEP_IN_ENVIRON:
            ctypes.memset(start + offset + len(name) + 1, 0, len(value))
            scrubbed += 1
        offset += len(entry) + 1
    return f"{dumpable}; {scrubbed} environ value(s) scrubbed"


# -- one instance per service-user pair ----------------------------------------------------

DEFAULT_LOCK_DIR = "/run/sealgate"


class InstanceLock:
    """Refuse a second live instance that would run as the same service users.

    Every instance's guardian accepts its sandbox by uid, so two instances sharing the pair
    would let one's sandbox reach the other's guardian.sock. One lock file per user name,
    held (flock) while the supervisor runs; the kernel drops it when the process dies.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: list[int] = []

    def acquire(self, identities: list[Identity], runtime: Path) -> None:
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        dir_fd = _open_dir(self.directory, None, str(self.directory))
        try:
            for identity in identities:
                name = f"user-{identity.name}.lock"
                fd = os.open(
                    name,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dir_fd,
                )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                    os.close(fd)
                    self.release()
                    raise Refusal(
                        f"another SealGate instance ({holder or 'unknown'}) already runs as"
                        f" {identity.name}; instances sharing service users could reach each"
                        " other's guardian. Give this one its own pair, e.g."
                        " HUB_GUARDIAN_USER=hub2-guardian HUB_SANDBOX_USER=hub2-sandbox"
                    ) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}, runtime {runtime}\n".encode(), 0)
                self._fds.append(fd)
        finally:
            os.close(dir_fd)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


# -- talking to the guardian ---------------------------------------------------------------


def guardian_answers(path: Path, timeout: float = 2.0) -> bool:
    """True when the admin socket (its file, or its abstract name) answers `hello`."""
    try:
        with connect_admin(path, timeout) as sock:
            hello = {"protocol_version": PROTOCOL_VERSION, "client": "supervisor"}
            sock.sendall(encode(request(1, "hello", hello)))
            decoder = FrameDecoder()
            while True:
                data = sock.recv(65536)
                if not data:
                    return False
                for raw in decoder.feed(data):
                    answer = parse_message(raw)
                    return (
                        isinstance(answer, Response) and answer.msgid == 1 and answer.error is None
                    )
    except (OSError, ProtocolError):
        return False


# -- what the children leave behind -------------------------------------------------------
#
# A process the sandbox forks (a poisoned dependency's daemon) must not outlive it, nor the
# supervisor's stop. The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever
# a child forks and leaves behind, however often it forks or calls setsid(), is reparented
# to the supervisor rather than to PID 1, so the supervisor can always find it, in /proc,
# below itself. A cgroup would do the same and more, but needs root or a delegated
# hierarchy, which a non-root container (a Space) does not have; process groups and
# sessions are not enough, since the forked process may leave both.


def become_subreaper() -> bool:
    """Make orphans of our descendants our children; True when the kernel agreed."""
    return bool(_libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def process_table() -> dict[int, tuple[int, str]]:
    """Every visible process: pid -> (parent pid, state letter)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int, table: Mapping[int, tuple[int, str]]) -> set[int]:
    """Every process below `root` in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def sweep(spare: set[int]) -> int:
    """Kill every process below the supervisor but `spare` (live children we started) and
    what lies below them; reap those reparented to us. Returns how many were killed."""
    me = os.getpid()
    killed = 0
    for _ in range(SWEEP_ROUNDS):
        table = process_table()
        kept = set(spare)
        for pid in spare:
            kept |= descendants(pid, table)
        victims = descendants(me, table) - kept
        if not victims:
            return killed
        for pid in victims:
            ppid, state = table[pid]
            if state != "Z" and _kill(pid, ppid):
                killed += 1
            if ppid == me:
                _reap(pid)
        time.sleep(0.01)
    logger.error("processes left below the supervisor keep appearing; giving up")
    return killed


def _kill(pid: int, ppid: int) -> bool:
    """SIGKILL `pid` through a pidfd, once sure it is still the process we saw (its parent
    unchanged), so a recycled pid is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if int(fields[1]) != ppid:
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except (OSError, IndexError, ValueError):
        return False
    finally:
        os.close(fd)


def _reap(pid: int) -> None:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.005)


# -- the supervisor ------------------------------------------------------------------------


def _set_parent_death_signal() -> None:
    """Runs in the child before exec: die with the supervisor rather than linger."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


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


class Supervisor:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self.config_path = Path(environ.get("HUB_CONFIG", ".pyfun")).resolve()
        self.env_file = Path(environ.get("HUB_ENV_FILE", ".env")).resolve()
        self.layout = RuntimeLayout.from_environ(environ)
        self.signals: list[int] = []
        self.children: list[Child] = []
        self.guardian_id = Identity.current()
        self.sandbox_id = Identity.current()
        self.exit_code = EX_OK
        self.instance_lock = InstanceLock(Path(environ.get("HUB_LOCK_DIR", DEFAULT_LOCK_DIR)))
        self.hello_timeout_s = GUARDIAN_HELLO_TIMEOUT_S

    # set-up -------------------------------------------------------------------------------
    def check_config(self) -> None:
        try:
            text = self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PyfunError(str(self.config_path), 0, "configuration file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PyfunError(str(self.config_path), 0, f"cannot read it: {exc}") from None
        config = with_env_overrides(parse(text, str(self.config_path)), self.environ)
        for warning in config.warnings:
            logger.warning("%s", warning)
        # the guardian may spend db_connect_wait_s reaching its database before it answers
        self.hello_timeout_s = GUARDIAN_HELLO_TIMEOUT_S + config.hub.db_connect_wait_s

    def choose_identities(self) -> None:
        single = self.environ.get("HUB_SINGLE_UID", "").strip().lower() in ("1", "true", "yes")
        if os.geteuid() != 0:
            logger.warning(
                "running as %s (not root): the guardian and the sandbox share uid %d, so the"
                " sandbox is not isolated from the guardian's files; run as root (or with"
                " systemd units) for two-uid isolation",
                self.guardian_id.name,
                self.guardian_id.uid,
            )
            return
        if single:
            logger.warning(
                "HUB_SINGLE_UID=1: the guardian and the sandbox both run as root; this is for"
                " development only"
            )
            return
        self.guardian_id = ensure_user(self.environ.get("HUB_GUARDIAN_USER", "hub-guardian"))
        self.sandbox_id = ensure_user(self.environ.get("HUB_SANDBOX_USER", "hub-sandbox"))
        if self.guardian_id.uid == self.sandbox_id.uid:
            raise Refusal("HUB_GUARDIAN_USER and HUB_SANDBOX_USER name the same user")
        for identity in (self.guardian_id, self.sandbox_id):
            check_code_readable(identity, sys.executable)
        if not may_access(self.config_path, self.sandbox_id, 0o4) or not may_access(
            self.config_path, self.guardian_id, 0o4
        ):
            raise Refusal(
                f"{self.config_path} must be readable by both {self.guardian_id.name} and"
                f" {self.sandbox_id.name} (it holds no secret): chmod 0644 {self.config_path}"
            )
        logger.info(
            "guardian runs as %s (uid %d), sandbox as %s (uid %d)",
            self.guardian_id.name,
            self.guardian_id.uid,
            self.sandbox_id.name,
            self.sandbox_id.uid,
        )

    def check_secrets_beyond_sandbox_reads(self) -> None:
        """One uid: Landlock alone keeps secrets from the sandbox, so none may lie beneath a
        path its rules let it read."""
        for secret in (*self.secret_paths(), self.layout.guardian_dir):
            allowed = exposing(secret, self.layout, self.config_path)
            if allowed is not None:
                raise Refusal(
                    f"{secret} lies beneath {allowed}, which the sandbox may read (one uid:"
                    " Landlock is all that keeps secrets from it); move it elsewhere, e.g."
                    " HUB_ENV_FILE=/run/secrets/sealgate.env"
                )

    def secret_paths(self) -> list[Path]:
        paths = [self.env_file]
        credentials = self.environ.get("CREDENTIALS_DIRECTORY")
        if credentials:
            paths.append(Path(credentials))
        return paths

    def build_children(self) -> None:
        two_uids = self.guardian_id.uid != self.sandbox_id.uid
        common = {
            "HUB_CONFIG": str(self.config_path),
            "HUB_RUNTIME_DIR": str(self.layout.root),
        }
        if self.layout.data_root is not None:
            common["HUB_DATA_DIR"] = str(self.layout.data_root)
        guardian_env = without_python_vars(self.environ)
        guardian_env.update(common)
        guardian_env["HUB_ENV_FILE"] = str(self.env_file)
        guardian_env["HUB_SANDBOX_UID"] = str(self.sandbox_id.uid)
        guardian_env.update(login_env(self.guardian_id, self.layout.guardian_dir))
        # The sandbox's environment: an explicit list of names, never a prefix.
        sandbox_env = {
            name: self.environ[name] for name in SANDBOX_ENV_ALLOWLIST if name in self.environ
        }
        sandbox_env = without_python_vars(sandbox_env)
        sandbox_env.pop("LISTEN_FDS", None)
        sandbox_env.pop("LISTEN_PID", None)
        sandbox_env.update(common)
        sandbox_env.update(login_env(self.sandbox_id, SANDBOX_HOME))
        sandbox_env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        self.children = [
            Child("guardian", entry_argv("guardian"), guardian_env, self.guardian_id, two_uids),
            Child("sandbox", entry_argv("sandbox"), sandbox_env, self.sandbox_id, two_uids),
        ]

    # process control ----------------------------------------------------------------------
    def spawn(self, child: Child) -> None:
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
        )
        child.state = State.RUNNING
        child.started_at = time.monotonic()
        logger.info(
            "%s started (pid %d, uid %d)", child.name, child.process.pid, child.identity.uid
        )

    def wait_for_guardian(self, guardian: Child) -> bool:
        deadline = time.monotonic() + self.hello_timeout_s
        while time.monotonic() < deadline:
            if guardian.process is None or guardian.process.poll() is not None:
                return False
            if guardian_answers(self.layout.admin_socket):
                logger.info("guardian answers hello on %s", self.layout.admin_socket)
                return True
            if self._wait_signal(0.05):
                return False
        logger.error("guardian did not answer hello within %.0f s", self.hello_timeout_s)
        return False

    def reap(self, child: Child) -> None:
        """Notice a dead child and schedule its restart, or give up."""
        process = child.process
        if child.state is not State.RUNNING or process is None:
            return
        status = process.poll()
        if status is None:
            return
        ran = time.monotonic() - child.started_at
        child.process = None
        self.sweep_leftovers()
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

    def stop_all(self) -> None:
        """The sandbox first, and wholly, before the guardian: it stops taking requests and
        closes its link itself, so neither side takes a planned stop for a lost connection."""
        alive = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in reversed(alive):
            process = child.process
            if process is None:
                continue
            logger.info("stopping %s (pid %d)", child.name, child.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s did not stop within %.0f s; killing it", child.name, STOP_GRACE_S
                )
                process.kill()
                process.wait()
            logger.info("%s stopped (status %s)", child.name, process.returncode)
            child.state = State.STOPPED
            child.process = None
            self.sweep_leftovers()

    def sweep_leftovers(self) -> None:
        """Kill what a child forked and left behind (reparented to us), sparing the live
        children and what runs below them."""
        live = {c.process.pid for c in self.children if c.process and c.process.poll() is None}
        killed = sweep(live)
        if killed:
            security_logger.warning(
                "killed %d process(es) left behind by a child (forked and orphaned)", killed
            )

    def orphans(self) -> bool:
        """Whether a process we did not start is our child (a child forked and left it)."""
        started = {c.process.pid for c in self.children if c.process}
        me = os.getpid()
        try:
            text = Path(f"/proc/{me}/task/{me}/children").read_text()
        except OSError:
            table = process_table()
            return any(ppid == me and pid not in started for pid, (ppid, _) in table.items())
        return any(int(pid) not in started for pid in text.split())

    # signals ------------------------------------------------------------------------------
    def _queue_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def install_signals(self) -> None:
        self._wakeup_r, wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_w)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._queue_signal)

    def _wait_signal(self, timeout: float) -> bool:
        """Sleep until a signal arrives or `timeout` passes; True if a stop was asked."""
        readable, _, _ = select.select([self._wakeup_r], [], [], timeout)
        if readable:
            try:
                os.read(self._wakeup_r, 4096)
            except BlockingIOError:
                pass
        return any(s in (signal.SIGTERM, signal.SIGINT) for s in self.signals)

    def handle_signals(self) -> bool:
        """Act on queued signals; True when the supervisor should stop."""
        queued, self.signals = self.signals, []
        stop = False
        for signum in queued:
            if signum in (signal.SIGTERM, signal.SIGINT):
                logger.info("received %s; shutting down", signal.Signals(signum).name)
                stop = True
            elif signum == signal.SIGHUP:
                self.forward_reload()
        return stop

    def forward_reload(self) -> None:
        guardian = self.children[0]
        try:
            check_secret_files(self.secret_paths(), self.guardian_id, self.sandbox_id)
        except Refusal as exc:
            logger.error("SIGHUP: reload refused: %s", exc)
            return
        if guardian.process is not None and guardian.process.poll() is None:
            logger.info("SIGHUP: asking the guardian to reload")
            guardian.process.send_signal(signal.SIGHUP)

    # main ---------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.check_config()
        except PyfunError as exc:
            logger.error("cannot start: %s", exc)
            return EX_CONFIG
        try:
            self.choose_identities()
            if self.guardian_id.uid != self.sandbox_id.uid:
                self.instance_lock.acquire([self.guardian_id, self.sandbox_id], self.layout.root)
            else:
                self.check_secrets_beyond_sandbox_reads()
            check_secret_files(self.secret_paths(), self.guardian_id, self.sandbox_id)
            prepare_runtime(self.layout, self.guardian_id, self.sandbox_id)
        except Refusal as exc:
            logger.error("refusing to start: %s", exc)
            return EX_CONFIG
        except (OSError, subprocess.SubprocessError) as exc:
            logger.error("cannot prepare the runtime directory %s: %s", self.layout.root, exc)
            return EX_FAILED
        if not become_subreaper():
            logger.warning(
                "PR_SET_CHILD_SUBREAPER refused: a process a child forks and orphans may outlive it"
            )
        self.install_signals()
        self.build_children()
        guardian, sandbox = self.children
        logger.info(
            "SealGate %s starting (config %s, runtime %s)",
            __version__,
            self.config_path,
            self.layout.root,
        )
        self.spawn(guardian)
        if not self.wait_for_guardian(guardian):
            self.reap(guardian)
            code = EX_CONFIG if guardian.state is State.FATAL else EX_FAILED
            if any(s in (signal.SIGTERM, signal.SIGINT) for s in self.signals):
                code = EX_OK  # asked to stop while waiting; the guardian's own SIGCHLD is not
            self.stop_all()
            return code
        self.spawn(sandbox)
        while True:
            if self.handle_signals():
                break
            now = time.monotonic()
            for child in self.children:
                self.reap(child)
                if child.state is State.BACKOFF and now >= child.restart_at:
                    self.spawn(child)
            if any(child.state is State.FATAL for child in self.children):
                self.exit_code = (
                    EX_CONFIG
                    if any(
                        c.state is State.FATAL and c.failed_starts <= MAX_FAILED_STARTS
                        for c in self.children
                    )
                    else EX_FAILED
                )
                break
            if self.orphans():
                self.sweep_leftovers()
            self._wait_signal(0.2)
        self.stop_all()
        logger.info("supervisor exiting with status %d", self.exit_code)
        return self.exit_code


def main() -> int:
    logging.basicConfig(
        format="%(asctime)s supervisor[%(process)d] %(levelname)s: %(message)s",
        level=logging.INFO,
        stream=sys.stderr,
    )
    if len(sys.argv) > 1:
        print(
            "usage: python supervisor.py   (settings come from HUB_* variables; see README.md)",
            file=sys.stderr,
        )
        return EX_USAGE
    environ = dict(os.environ)  # our copy: the guardian's environment is built from it
    logger.info("supervisor protections: %s", harden_self())
    return Supervisor(environ).run()


if __name__ == "__main__":
    sys.exit(main())
