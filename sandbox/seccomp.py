"""A seccomp filter on socket families and types: what Landlock's TCP rules leave open.

Landlock (ABI 4+) forbids TCP connect and bind, but UDP (DNS to a public resolver is an
exfiltration channel), raw and packet sockets, netlink and io_uring (whose socket operations
bypass a `socket()` filter) stay open to code running in a compromised sandbox. This filter:

- allows `socket(AF_UNIX, ...)` (the guardian link and its reconnects) and `socketpair`;
- allows `socket(AF_INET/AF_INET6, SOCK_STREAM, 0 | IPPROTO_TCP)` (Landlock then decides);
- answers EAFNOSUPPORT for every other family, EPERM for any other type or protocol (UDP,
  raw, SCTP, MPTCP), and EPERM for `io_uring_setup`;
- answers EPERM to every syscall of a foreign audit architecture (and to x32 syscalls), so
  the 32-bit entry points cannot sidestep the numbers checked here.

Nothing is killed: a denied call fails with an errno the caller already handles.

The BPF program is written by hand because no maintained libseccomp binding is on PyPI
(`pyseccomp` is unmaintained, `seccomp` from libseccomp's tree is not published); the
program is a dozen instructions and its tests run it for real.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import socket
from dataclasses import dataclass

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# classic BPF opcodes
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
BPF_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data offsets
OFF_NR = 0
OFF_ARCH = 4


def _arg(index: int) -> int:
    return 16 + 8 * index  # the low 32 bits of args[index] (little-endian)


SOCK_TYPE_MASK = 0xF  # strips SOCK_NONBLOCK and SOCK_CLOEXEC
X32_SYSCALL_BIT = 0x40000000


@dataclass(frozen=True, slots=True)
class _Arch:
    audit_arch: int
    socket: int
    socketpair: int
    io_uring_setup: int
    seccomp: int
    x32_guard: bool


_ARCHES = {
    "x86_64": _Arch(0xC000003E, 41, 53, 425, 317, True),
    "aarch64": _Arch(0xC00000B7, 198, 199, 425, 277, False),
}


class _Filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def _errno(code: int) -> int:
    return SECCOMP_RET_ERRNO | (code & 0xFFFF)


def program(arch: _Arch, unix: bool = True) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps are relative to the next one.
    `unix=False` also refuses `socket(AF_UNIX, ...)` (EAFNOSUPPORT): an upstream stdio MCP
    server needs no Unix socket, and Landlock does not stop a connect to a socket file (the
    guardian's admin socket); `socketpair` stays allowed."""
    allow = (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
    eperm = (BPF_RET_K, 0, 0, _errno(errno.EPERM))
    no_family = (BPF_RET_K, 0, 0, _errno(errno.EAFNOSUPPORT))
    check_nr = [
        (BPF_LD_W_ABS, 0, 0, OFF_NR),
        (BPF_JGE_K, 0, 1, X32_SYSCALL_BIT) if arch.x32_guard else (BPF_JEQ_K, 0, 1, 0xFFFFFFFF),
        eperm,
        (BPF_JEQ_K, 0, 1, arch.io_uring_setup),
        eperm,
        (BPF_JEQ_K, 1, 0, arch.socket),
        allow,  # socketpair and everything else
    ]
    check_socket = [
        (BPF_LD_W_ABS, 0, 0, _arg(0)),
        (BPF_JEQ_K, 0, 1, socket.AF_UNIX),
        allow if unix else no_family,
        (BPF_JEQ_K, 1, 0, socket.AF_INET),
        (BPF_JEQ_K, 0, 8, socket.AF_INET6),
        (BPF_LD_W_ABS, 0, 0, _arg(1)),
        (BPF_AND_K, 0, 0, SOCK_TYPE_MASK),
        (BPF_JEQ_K, 0, 4, socket.SOCK_STREAM),
        (BPF_LD_W_ABS, 0, 0, _arg(2)),
        (BPF_JEQ_K, 1, 0, 0),
        (BPF_JEQ_K, 0, 1, socket.IPPROTO_TCP),
        allow,
        eperm,
        no_family,
    ]
    head = [
        (BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        (BPF_JEQ_K, 1, 0, arch.audit_arch),
        eperm,
    ]
    return head + check_nr + check_socket


def install(unix: bool = True) -> str:
    """Install the filter on every thread of this process; return "" or why it was not.

    Needs `PR_SET_NO_NEW_PRIVS` first (the kernel refuses a filter from an unprivileged
    process otherwise).
    """
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return f"no seccomp filter for architecture {platform.machine()}"
    instructions = program(arch, unix)
    filters = (_Filter * len(instructions))(*(_Filter(*i) for i in instructions))
    prog = _Fprog(len(instructions), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if (
        libc.syscall(
            arch.seccomp,
            ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.byref(prog),
        )
        == 0
    ):
        return ""
    first = ctypes.get_errno()
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0:
        return ""
    return f"seccomp refused: {errno.errorcode.get(first, first)}"
