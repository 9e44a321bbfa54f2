"""Self-sandboxing: what the sandbox takes away from itself once its sockets are bound.

- `PR_SET_NO_NEW_PRIVS`: no exec can ever gain privileges (setuid binaries, file caps).
- Landlock (Linux >= 5.13), as far as the kernel's ABI goes:
  - reads (and exec) only beneath what the sandbox needs: its own code, the Python
    installation and venv, system libraries, CA certificates, the config file, its state
    directory and the guardian socket's directory. Not the env file, not the guardian's
    database, not /proc of other processes;
  - writes only in its state directory (and /dev/null);
  - ABI 4: no TCP connect and no TCP bind at all;
  - ABI 6: no connect to abstract Unix sockets made outside the sandbox (the guardian's
    admin socket in single-uid mode) and no signals to processes outside the sandbox.
- seccomp (`sandbox.seccomp`): no UDP, raw, packet, netlink or other socket families, no
  io_uring.

This is the isolation that remains in single-uid mode (Hugging Face Spaces, a normal user).
Where the kernel offers less, less is applied and the start-up log says exactly what (at
error level when a single-uid sandbox can read the secrets); the sandbox never fails to start
for it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from protocol import sandboxpaths
from protocol.protections import WRITES_CONFINED, SandboxProtections, landlock_rules
from protocol.runtime import RuntimeLayout
from sandbox import seccomp

logger = logging.getLogger("sealgate.sandbox.selfsandbox")

PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2  # ABI 4

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE
_WRITE_ABI1 = (
    FS_WRITE_FILE
    | FS_REMOVE_DIR
    | FS_REMOVE_FILE
    | FS_MAKE_CHAR
    | FS_MAKE_DIR
    | FS_MAKE_REG
    | FS_MAKE_SOCK
    | FS_MAKE_FIFO
    | FS_MAKE_BLOCK
    | FS_MAKE_SYM
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Where the sandbox may read (and exec) and where it may also write."""

    readable: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    #: TCP ports it may connect to (Landlock ABI 4+ filters by port, not host); the sandbox
    #: itself has none. An upstream stdio server gets its block's `connect_ports`.
    connect_ports: tuple[int, ...] = ()
    #: Whether `socket(AF_UNIX, ...)` is allowed (the sandbox's guardian link needs it; an
    #: upstream stdio server gets none: see `seccomp.program`).
    unix_sockets: bool = True


def sandbox_policy(layout: RuntimeLayout, config_path: Path) -> Policy:
    """What the real sandbox needs (`protocol.sandboxpaths`), and its own /proc entry."""
    return Policy(
        readable=(*sandboxpaths.readable(layout, config_path), Path(f"/proc/{os.getpid()}")),
        writable=sandboxpaths.writable(layout),
    )


@dataclass
class Applied:
    no_new_privs: bool = False
    landlock_abi: int = 0
    rules: list[str] = field(default_factory=list)
    seccomp: bool = False
    notes: list[str] = field(default_factory=list)

    def protections(self, two_uids: bool) -> SandboxProtections:
        return SandboxProtections(
            two_uids=two_uids,
            no_new_privs=self.no_new_privs,
            landlock_abi=self.landlock_abi,
            landlock_rules=tuple(self.rules),
            seccomp=self.seccomp,
            notes=tuple(self.notes),
        )

    def describe(self) -> str:
        parts = [f"no_new_privs {'on' if self.no_new_privs else 'OFF'}"]
        if self.landlock_abi:
            parts.append(f"landlock ABI {self.landlock_abi}")
            parts.extend(self.rules)
        else:
            parts.append("landlock unavailable")
        parts.append("seccomp socket filter on" if self.seccomp else "seccomp OFF")
        return "; ".join(parts + self.notes)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when it has none (or it is disabled)."""
    try:
        version = _libc().syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
        )
    except (OSError, AttributeError):
        return 0
    return version if version > 0 else 0


def apply(policy: Policy, *, max_abi: int | None = None) -> Applied:
    """Restrict this process (and what it starts) for the rest of its life.

    `max_abi` pretends the kernel offers at most that Landlock ABI (0: none), so tests can
    show what an older kernel leaves open.
    """
    applied = Applied()
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied.no_new_privs = True
    else:
        applied.notes.append(f"prctl failed: {os.strerror(ctypes.get_errno())}")
        return applied
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        # Landlock restricts the calling thread (and threads it starts later) only.
        applied.notes.append(
            f"{threads - 1} other thread(s) existed before Landlock and are NOT restricted"
        )
    _landlock(libc, policy, applied, max_abi)
    refused = seccomp.install(unix=policy.unix_sockets)
    if refused:
        applied.notes.append(refused)
    else:
        applied.seccomp = True
    return applied


def _landlock(libc: ctypes.CDLL, policy: Policy, applied: Applied, max_abi: int | None) -> None:
    abi = landlock_abi()
    if max_abi is not None:
        abi = min(abi, max_abi)
    if abi == 0:
        return
    write_access = _WRITE_ABI1
    if abi >= 2:
        write_access |= FS_REFER
    if abi >= 3:
        write_access |= FS_TRUNCATE
    read_access = _READ
    handled = write_access | read_access
    attr = _RulesetAttr(handled_access_fs=handled)
    size = ctypes.sizeof(ctypes.c_uint64)  # ABI < 4 knows only handled_access_fs
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 2 * ctypes.sizeof(ctypes.c_uint64)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = ctypes.sizeof(attr)
    ruleset = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        applied.notes.append(f"landlock ruleset refused: {os.strerror(ctypes.get_errno())}")
        return
    try:
        for path in policy.readable:
            _allow(libc, ruleset, path, read_access, applied, quiet_if_missing=True)
        for path in policy.writable:
            _allow(libc, ruleset, path, handled, applied, quiet_if_missing=False)
        if abi >= 4:
            for port in policy.connect_ports:
                _allow_port(libc, ruleset, port, applied)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)):
            applied.notes.append(f"landlock restrict refused: {os.strerror(ctypes.get_errno())}")
            return
    finally:
        os.close(ruleset)
    applied.landlock_abi = abi
    writable = ", ".join(str(p) for p in policy.writable if p.is_dir()) or "/dev/null only"
    applied.rules.extend(
        f"{rule} to {writable}" if rule == WRITES_CONFINED else rule for rule in landlock_rules(abi)
    )
    if abi < 4:
        applied.notes.append(f"TCP not restricted by landlock (ABI {abi} < 4)")
    if abi < 6:
        applied.notes.append(
            f"landlock ABI {abi} < 6: abstract Unix sockets (the admin socket in single-uid"
            " mode) and signals to other processes are NOT scoped"
        )


def _allow(
    libc: ctypes.CDLL,
    ruleset: int,
    path: Path,
    access: int,
    applied: Applied,
    *,
    quiet_if_missing: bool,
) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if not quiet_if_missing:
            applied.notes.append(f"cannot open {path}: {exc.strerror}")
        return
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):  # a file takes file rights only
            access &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=access, parent_fd=fd)
        if libc.syscall(
            SYS_LANDLOCK_ADD_RULE,
            ctypes.c_int(ruleset),
            ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
            ctypes.byref(rule),
            ctypes.c_uint32(0),
        ):
            applied.notes.append(f"rule for {path} refused: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def _allow_port(libc: ctypes.CDLL, ruleset: int, port: int, applied: Applied) -> None:
    rule = _NetPortAttr(allowed_access=NET_CONNECT_TCP, port=port)
    if libc.syscall(
        SYS_LANDLOCK_ADD_RULE,
        ctypes.c_int(ruleset),
        ctypes.c_int(LANDLOCK_RULE_NET_PORT),
        ctypes.byref(rule),
        ctypes.c_uint32(0),
    ):
        applied.notes.append(f"rule for TCP port {port} refused: {os.strerror(ctypes.get_errno())}")
    else:
        applied.rules.append(f"TCP connect to port {port}")
