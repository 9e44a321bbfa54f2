"""The hand-written seccomp program, run on a small classic-BPF interpreter: every path
through it, both architectures, foreign architectures and x32 syscalls."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from sandbox import seccomp

ALLOW = seccomp.SECCOMP_RET_ALLOW


def _errno(code: int) -> int:
    return seccomp.SECCOMP_RET_ERRNO | code


def run(program: list[tuple[int, int, int, int]], data: bytes) -> int:
    """Interpret the subset of cBPF the filter uses; fail on anything else."""
    acc, pc = 0, 0
    for _ in range(len(program) + 1):
        code, jt, jf, k = program[pc]
        if code == seccomp.BPF_LD_W_ABS:
            (acc,) = struct.unpack_from("<I", data, k)
            pc += 1
        elif code == seccomp.BPF_AND_K:
            acc &= k
            pc += 1
        elif code == seccomp.BPF_JEQ_K:
            pc += 1 + (jt if acc == k else jf)
        elif code == seccomp.BPF_JGE_K:
            pc += 1 + (jt if acc >= k else jf)
        elif code == seccomp.BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        assert 0 <= pc < len(program), "a jump leaves the program"
    raise AssertionError("the program does not end")


def data(arch: int, nr: int, *args: int) -> bytes:
    padded = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, 0, *padded)


@pytest.mark.parametrize("machine", sorted(seccomp._ARCHES))
def test_socket_families_and_types(machine: str) -> None:
    arch = seccomp._ARCHES[machine]
    program = seccomp.program(arch)

    def sock(family: int, kind: int, proto: int = 0) -> int:
        return run(program, data(arch.audit_arch, arch.socket, family, kind, proto))

    cloexec = socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
    assert sock(socket.AF_UNIX, socket.SOCK_STREAM) == ALLOW
    assert sock(socket.AF_UNIX, socket.SOCK_DGRAM | cloexec) == ALLOW
    assert sock(socket.AF_INET, socket.SOCK_STREAM | cloexec) == ALLOW
    assert sock(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP) == ALLOW
    assert sock(socket.AF_INET, socket.SOCK_DGRAM) == _errno(errno.EPERM)
    assert sock(socket.AF_INET6, socket.SOCK_DGRAM | cloexec) == _errno(errno.EPERM)
    assert sock(socket.AF_INET, socket.SOCK_RAW, 1) == _errno(errno.EPERM)
    assert sock(socket.AF_INET, socket.SOCK_STREAM, 132) == _errno(errno.EPERM)  # SCTP
    assert sock(socket.AF_INET, socket.SOCK_STREAM, 262) == _errno(errno.EPERM)  # MPTCP
    assert sock(socket.AF_PACKET, socket.SOCK_RAW) == _errno(errno.EAFNOSUPPORT)
    assert sock(socket.AF_NETLINK, socket.SOCK_RAW) == _errno(errno.EAFNOSUPPORT)
    assert run(program, data(arch.audit_arch, arch.io_uring_setup, 1)) == _errno(errno.EPERM)
    assert run(program, data(arch.audit_arch, 0)) == ALLOW  # read/io_setup: untouched
    assert run(program, data(arch.audit_arch, arch.socketpair, 1, 1)) == ALLOW


def test_foreign_architectures_and_x32_are_refused() -> None:
    arch = seccomp._ARCHES["x86_64"]
    program = seccomp.program(arch)
    i386 = 0x40000003
    assert run(program, data(i386, 359, socket.AF_INET, socket.SOCK_DGRAM)) == _errno(errno.EPERM)
    x32_socket = seccomp.X32_SYSCALL_BIT | arch.socket
    assert run(program, data(arch.audit_arch, x32_socket, socket.AF_INET, 2)) == _errno(errno.EPERM)
