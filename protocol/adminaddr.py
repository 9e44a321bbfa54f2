"""Where the admin socket listens, and how operators reach it.

With two uids the admin socket is the file `var/guardian/admin.sock` (0600 in a 0700
directory of the guardian's user): file permissions keep the sandbox out. With one uid they
cannot, and Landlock (up to ABI 7) does not govern `connect()` on a Unix socket file, so the
guardian listens instead on an abstract-namespace name derived from that path. A sandbox under
Landlock ABI 6+ cannot connect to an abstract socket made outside its domain, and the guardian
still accepts only its own uid or root. An operator's client tries the file first, then the
abstract name, and talks to an abstract socket only when its owner is the owner of the
guardian directory (another user could have taken the name first).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
from pathlib import Path

from protocol.channel import SocketChannel
from protocol.framing import DEFAULT_MAX_FRAME_SIZE

_PEERCRED = struct.Struct("3i")


def abstract_name(path: Path) -> str:
    """The abstract address standing in for the admin socket file `path`."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:32]
    return f"\0sealgate-admin-{digest}"


def connect_admin(path: Path, timeout: float = 5.0) -> socket.socket:
    """A connected, blocking socket to the admin socket for `path`.

    Raises FileNotFoundError when nothing listens under either address, PermissionError when
    the file is not ours to use or the abstract name belongs to a stranger.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if os.path.lexists(path):
            sock.connect(str(path))
            return sock
        try:
            sock.connect(abstract_name(path))
        except ConnectionRefusedError:
            raise FileNotFoundError(f"no admin socket at {path}") from None
        _, uid, _ = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        owner = os.stat(path.parent).st_uid
        if uid != owner:
            raise PermissionError(
                f"the abstract admin socket for {path} belongs to uid {uid}, not to the"
                f" guardian directory's owner (uid {owner}); refusing to talk to it"
            )
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
