"""Length-prefixed msgpack frames: a 4-byte big-endian length, then one msgpack object.

Pure byte handling, no I/O: `encode` turns a message into bytes, `FrameDecoder` turns a
stream of bytes back into messages, many per `feed` so a reader drains a whole socket buffer
in one wakeup. The announced length is checked against the maximum *before* any body is
buffered, so a peer cannot make us hold more than `max_frame_size` bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from protocol.errors import FrameTooLarge, MalformedFrame

DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
HEADER = struct.Struct(">I")

_packer_default = msgpack.Packer(use_bin_type=True)


def encode(message: Any) -> bytes:
    """One frame: the length header and the packed message."""
    body: bytes = _packer_default.pack(message)
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    """Unpack one frame body, which must hold exactly one msgpack object.

    msgpack bounds every string, array and map by the body's own length, and the body is
    already bounded by the maximum frame size.
    """
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError) as exc:
        # msgpack raises ValueError subclasses for truncated or oversized data, ExtraData
        # for trailing bytes, FormatError/StackError for garbage: all mean "not a frame".
        raise MalformedFrame(f"frame body is not one msgpack object: {type(exc).__name__}") from exc


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole messages back."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise RuntimeError("max_frame_size must be a positive number of bytes.")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """Add received bytes; return every message now complete, in order.

        Raises `FrameTooLarge` or `MalformedFrame`; after either the stream is unusable
        and the connection must be closed.
        """
        buffer = self._buffer
        buffer += data
        messages: list[Any] = []
        offset = 0
        size = len(buffer)
        while size - offset >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, offset)
            if length > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {length} bytes announced; the maximum is {self.max_frame_size}"
                )
            end = offset + HEADER.size + length
            if end > size:
                break
            messages.append(decode_body(bytes(buffer[offset + HEADER.size : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return messages

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)
