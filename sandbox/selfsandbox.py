"""Self-sandboxing: what the sandbox takes away from itself once its sockets are bound.

- `PR_SET_NO_NEW_PRIVS`: no exec can ever gain privileges (setuid binaries, file caps).
- Landlock (Linux >= 5.13; TCP rules need ABI >= 4): no TCP connect and no TCP bind at all,
  and no file system writes outside the sandbox's own state directory (reads stay allowed).

This is the isolation that remains in single-uid mode (Hugging Face Spaces, a normal user):
even code running inside a compromised sandbox cannot open a connection to exfiltrate
through, nor write outside its state directory. Where the kernel offers less, less is
applied and the start-up log says exactly what; the sandbox never fails to start for it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("sealgate.sandbox.selfsandbox")

PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

FS_WRITE_FILE = 1 << 1
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
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@dataclass
class Applied:
    no_new_privs: bool = False
    landlock_abi: int = 0
    tcp_blocked: bool = False
    writes_confined_to: str = ""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"no_new_privs {'on' if self.no_new_privs else 'OFF'}"]
        if self.landlock_abi:
            parts.append(f"landlock ABI {self.landlock_abi}")
            parts.append(
                "TCP connect/bind blocked"
                if self.tcp_blocked
                else "TCP not restricted (needs ABI 4)"
            )
            parts.append(f"writes confined to {self.writes_confined_to}")
        else:
            parts.append("landlock unavailable")
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


def apply(writable: list[Path]) -> Applied:
    """Restrict this process (and what it starts) for the rest of its life."""
    applied = Applied()
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied.no_new_privs = True
    else:
        applied.notes.append(f"prctl failed: {os.strerror(ctypes.get_errno())}")
        return applied
    abi = landlock_abi()
    if abi == 0:
        return applied
    write_access = _WRITE_ABI1
    if abi >= 2:
        write_access |= FS_REFER
    if abi >= 3:
        write_access |= FS_TRUNCATE
    attr = _RulesetAttr(handled_access_fs=write_access, handled_access_net=0)
    size = ctypes.sizeof(ctypes.c_uint64)  # ABI < 4 knows only handled_access_fs
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = ctypes.sizeof(attr)
    ruleset = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        applied.notes.append(f"landlock ruleset refused: {os.strerror(ctypes.get_errno())}")
        return applied
    try:
        for path in writable:
            _allow_writes(libc, ruleset, path, write_access, applied)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)):
            applied.notes.append(f"landlock restrict refused: {os.strerror(ctypes.get_errno())}")
            return applied
    finally:
        os.close(ruleset)
    applied.landlock_abi = abi
    applied.tcp_blocked = abi >= 4
    applied.writes_confined_to = ", ".join(str(p) for p in writable)
    return applied


def _allow_writes(
    libc: ctypes.CDLL, ruleset: int, path: Path, access: int, applied: Applied
) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        applied.notes.append(f"cannot open {path}: {exc.strerror}")
        return
    try:
        if not path.is_dir():  # a file (like /dev/null) takes file rights only
            access &= FS_WRITE_FILE | FS_TRUNCATE
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
