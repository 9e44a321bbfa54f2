"""Whether the guardian is up: it answers `hello` on its admin socket.

The supervisor starts the sandbox only after this, so the sandbox never finds no guardian.
"""

from __future__ import annotations

from pathlib import Path

from protocol import PROTOCOL_VERSION
from protocol.adminaddr import connect_admin
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
