"""Whether the guardian is up: it answers `hello` on its admin socket.

The supervisor starts the sandbox only after this, so the sandbox never finds no guardian.
"""

from __future__ import annotations

import os
from pathlib import Path

from protocol import PROTOCOL_VERSION
from protocol.adminaddr import address_file, connect_admin, read_published
from protocol.errors import ProtocolError
from protocol.framing import FrameDecoder, encode
from protocol.messages import Response, request
from protocol.messages import parse as parse_message


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


def admin_address(path: Path) -> str:
    """Where the guardian's admin socket really is, as the log should say it: the file
    `path` with two uids; with one uid there is no file, and the abstract name the guardian
    published in `admin.addr` is said (with where it was published) instead."""
    if os.path.lexists(path):
        return str(path)
    try:
        published = read_published(path)
    except OSError as exc:
        return f"an abstract address (one uid: no socket file; {address_file(path)}: {exc})"
    return (
        f"the abstract address @{published.name[1:]} (one uid: no socket file; published in"
        f" {address_file(path)}, which sealgate-ctl reads)"
    )
