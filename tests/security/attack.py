"""Code a compromised sandbox would run: `python -m tests.security.attack SPEC_JSON`.

Run as the sandbox's uid, it first takes on the sandbox's own restrictions (the very policy
`sandbox/main.py` applies, or the same with Landlock withheld, as on an older kernel), then
tries what the spec lists and prints one JSON map of outcomes: "ok" or the errno's name.
Everything it needs is imported before the restrictions, as in the real sandbox.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from protocol.runtime import RuntimeLayout
from sandbox.selfsandbox import apply, sandbox_policy

SYS_IO_URING_SETUP = 425


def _outcome(action: Any) -> str:
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


def _read(path: str) -> None:
    with open(path, "rb") as handle:
        handle.read(1)


def _connect_unix(address: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(address)


def _connect_tcp(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(("127.0.0.1", port))


def _socket(family: int, kind: int, proto: int = 0) -> None:
    socket.socket(family, kind, proto).close()


def _udp_dns() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\0" * 12, ("127.0.0.1", 53))


def _io_uring() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(SYS_IO_URING_SETUP, 1, params)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    os.close(fd)


def _signal(pid: int) -> None:
    os.kill(pid, 0)


def _scan_proc(secret: bytes, skip: int) -> dict[str, Any]:
    """Every /proc/<pid>/{environ,cmdline,mem} readable here: where the secret shows."""
    found: dict[str, list[str]] = {}
    readable: dict[str, list[str]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError as exc:
        return {"listing": errno.errorcode.get(exc.errno or 0, "?"), "found": {}}
    for pid in pids:
        if pid == skip:
            continue
        for name in ("environ", "cmdline"):
            try:
                data = Path(f"/proc/{pid}/{name}").read_bytes()
            except OSError:
                continue
            readable.setdefault(str(pid), []).append(name)
            if secret in data:
                found.setdefault(str(pid), []).append(name)
        if _mem_has(pid, secret):
            found.setdefault(str(pid), []).append("mem")
    return {"listing": "ok", "found": found, "readable": readable}


def _mem_has(pid: int, secret: bytes) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return False
    try:
        for line in maps:
            fields = line.split()
            span, perms = fields[0], fields[1]
            if not perms.startswith("r") or (len(fields) > 5 and fields[5].startswith("/")):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            if end - start > 256 * 1024 * 1024:
                continue
            try:
                if secret in os.pread(fd, end - start, start):
                    return True
            except OSError:
                continue
    finally:
        os.close(fd)
    return False


def main(spec: dict[str, Any]) -> dict[str, Any]:
    layout = RuntimeLayout.from_environ(os.environ)
    policy = sandbox_policy(layout, Path(os.environ["HUB_CONFIG"]))
    applied = apply(policy, max_abi=None if spec.get("landlock", True) else 0)
    out: dict[str, Any] = {"applied": applied.describe()}
    for path in spec.get("read", []):
        out[f"read {path}"] = _outcome(lambda p=path: _read(p))
    for address in spec.get("unix", []):
        out[f"unix {address!r}"] = _outcome(lambda a=address: _connect_unix(a))
    if "tcp_port" in spec:
        out["tcp"] = _outcome(lambda: _connect_tcp(spec["tcp_port"]))
    if spec.get("sockets"):
        out["udp"] = _outcome(lambda: _socket(socket.AF_INET, socket.SOCK_DGRAM))
        out["udp6"] = _outcome(lambda: _socket(socket.AF_INET6, socket.SOCK_DGRAM))
        out["udp dns"] = _outcome(_udp_dns)
        out["raw"] = _outcome(lambda: _socket(socket.AF_INET, socket.SOCK_RAW, 1))
        out["packet"] = _outcome(lambda: _socket(socket.AF_PACKET, socket.SOCK_RAW))
        out["netlink"] = _outcome(lambda: _socket(socket.AF_NETLINK, socket.SOCK_RAW))
        out["sctp"] = _outcome(lambda: _socket(socket.AF_INET, socket.SOCK_STREAM, 132))
        out["unix dgram"] = _outcome(lambda: _socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        out["io_uring"] = _outcome(_io_uring)
    for pid in spec.get("signal", []):
        out[f"signal {pid}"] = _outcome(lambda p=pid: _signal(p))
    if "secret_hex" in spec:
        out["proc"] = _scan_proc(bytes.fromhex(spec["secret_hex"]), os.getpid())
    return out


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    print(json.dumps(main(json.loads(sys.argv[1]))))
