"""Where the admin socket listens, and how operators reach it without talking to an impostor.

With two uids the admin socket is the file `var/guardian/admin.sock` (0600 in a 0700
directory of the guardian's user): file permissions keep the sandbox out. With one uid they
cannot, and Landlock (up to ABI 7) does not govern `connect()` on a Unix socket file, so the
guardian listens on an abstract-namespace name instead; a sandbox under Landlock ABI 6+
cannot connect to an abstract socket made outside its domain.

Landlock does not stop the sandbox *binding* an abstract name, though, and every process of
the uid may bind any free one. So the name is random, new at each start (`new_name`), and
never derived from anything the sandbox knows; the guardian publishes it, with its own pid
and that process's start time, in `admin.addr` beside the socket path, in its own directory,
which the sandbox can neither read nor write (`publish`). A squatted name can never stop a
restart: the next start draws another.

An operator's client (`connect_admin`) uses the file when there is one; otherwise it reads
`admin.addr` and, once connected, checks the listener by `SO_PEERCRED`: its pid and that
pid's start time must be those the guardian published, and its uid the guardian directory's
owner. A same-uid sandbox can forge neither: it cannot write the guardian's directory, and a
process of its own has another pid (or, with a recycled pid, another start time). The name
itself is visible in /proc/net/unix while the guardian listens; that gives the sandbox
nothing, since it can neither connect to it (Landlock scoping) nor pass the peer check.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from protocol.channel import SocketChannel
from protocol.framing import DEFAULT_MAX_FRAME_SIZE

_PEERCRED = struct.Struct("3i")
NAME_PREFIX = "sealgate-admin-"
MAX_ADDRESS_FILE = 4096


@dataclass(frozen=True, slots=True)
class Published:
    """What the guardian wrote in `admin.addr`: its abstract name (with the leading NUL),
    its pid, and that process's start time (clock ticks after boot, /proc/<pid>/stat)."""

    name: str
    pid: int
    start: int


def new_name() -> str:
    """A fresh abstract address: 128 random bits nobody can predict or take first."""
    return f"\0{NAME_PREFIX}{secrets.token_hex(16)}"


def address_file(path: Path) -> Path:
    """Where the abstract address standing in for the admin socket `path` is published."""
    return path.with_name("admin.addr")


def start_time(pid: int) -> int:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat); OSError if none."""
    text = Path(f"/proc/{pid}/stat").read_text()
    try:
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        raise OSError(f"unreadable /proc/{pid}/stat") from None


def publish(path: Path, name: str) -> Published:
    """Write `admin.addr` for the admin socket `path` (0600, atomically, never through a
    link): the guardian's name, pid and start time."""
    pid = os.getpid()
    published = Published(name, pid, start_time(pid))
    target = address_file(path)
    temporary = target.with_name(f".{target.name}.{pid}")
    text = json.dumps({"address": "@" + name[1:], "pid": pid, "start": published.start})
    try:
        temporary.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(temporary, target)
    return published


def read_published(path: Path) -> Published:
    """The guardian's published address for the admin socket `path`.

    FileNotFoundError when none was published; PermissionError when the file is not the
    guardian directory owner's alone or does not parse."""
    target = address_file(path)
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        owner = os.stat(path.parent).st_uid
        if st.st_uid != owner or st.st_mode & 0o022:
            raise PermissionError(
                f"{target} is not the guardian's own (owner uid {st.st_uid}, mode"
                f" {st.st_mode & 0o777:o}); refusing to use it"
            )
        data = os.read(fd, MAX_ADDRESS_FILE)
    finally:
        os.close(fd)
    try:
        fields = json.loads(data)
        address, pid, start = fields["address"], fields["pid"], fields["start"]
        valid = (
            isinstance(address, str)
            and address.startswith("@" + NAME_PREFIX)
            and isinstance(pid, int)
            and isinstance(start, int)
        )
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise PermissionError(f"{target} does not hold an admin address; refusing to use it")
    return Published("\0" + address[1:], pid, start)


def peer_pid_and_uid(sock: socket.socket) -> tuple[int, int]:
    pid, uid, _ = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid


def check_peer(sock: socket.socket, path: Path, published: Published) -> None:
    """PermissionError unless the listener is the process that published the address."""
    pid, uid = peer_pid_and_uid(sock)
    owner = os.stat(path.parent).st_uid
    try:
        started = start_time(pid)
    except OSError:
        started = -1
    if pid != published.pid or started != published.start or uid != owner:
        raise PermissionError(
            f"the abstract admin socket for {path} is held by pid {pid} (uid {uid}), not by"
            f" the guardian that published it (pid {published.pid}, uid {owner}); refusing"
            " to talk to it"
        )


def connect_admin(path: Path, timeout: float = 5.0) -> socket.socket:
    """A connected, blocking socket to the admin socket for `path`.

    Raises FileNotFoundError when nothing listens under either address, PermissionError when
    the file is not ours to use or the abstract name is held by anyone but the guardian.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if os.path.lexists(path):
            sock.connect(str(path))
            return sock
        try:
            published = read_published(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no admin socket at {path}") from None
        try:
            sock.connect(published.name)
        except ConnectionRefusedError:
            raise FileNotFoundError(f"no admin socket at {path}") from None
        check_peer(sock, path, published)
        return sock
    except BaseException:
        sock.close()
        raise


async def open_admin_channel(
    path: Path, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> SocketChannel:
    """`connect_admin`, as an asyncio channel."""
    sock = connect_admin(path)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    _, channel = await loop.create_unix_connection(lambda: SocketChannel(max_frame_size), sock=sock)
    return channel
