"""Message channels: one `send`, one `receive`, whatever carries the bytes.

`SocketChannel` runs over a Unix socket (an asyncio `Protocol`, so one wakeup drains every
frame the kernel has buffered); `MemoryChannel.pair()` gives two connected ends in memory for
unit tests. Both encode and decode real frames, so the in-memory pair exercises the framing
too. The RPC client and the guardian's server do not know which kind they hold.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol, cast

from protocol.errors import ConnectionLost, ProtocolError
from protocol.framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Channel(Protocol):
    """What the RPC client and server need from a connection."""

    def send(self, message: Any) -> None:
        """Queue one message; raises `ConnectionLost` when the channel is closed."""

    def send_raw(self, data: bytes) -> None:
        """Queue one already encoded frame; raises `ConnectionLost` when closed."""

    async def receive(self) -> list[Any]:
        """Wait for one or more decoded messages; raises a `ProtocolError` at the end."""

    def deliver_to(self, on_messages: Listener, on_end: EndListener) -> None:
        """Hand every batch of messages to `on_messages` as it is decoded, instead of
        queueing it for `receive`: one event-loop wakeup less per message. `on_end` gets
        the error that ends the channel. A `ProtocolError` raised by `on_messages` ends it."""

    async def drain(self) -> None:
        """Wait until the peer has caught up with what was sent (flow control)."""

    def close(self) -> None:
        """Close the connection; pending `receive` calls raise `ConnectionLost`."""

    @property
    def closed(self) -> bool: ...


Listener = Callable[[list[Any]], None]
EndListener = Callable[[ProtocolError], None]


class _Inbox:
    """Messages waiting for `receive` (or handed straight to a listener), and the error that
    ends them."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.error: ProtocolError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._listener: Listener | None = None
        self._on_end: EndListener | None = None

    def listen(self, listener: Listener, on_end: EndListener) -> None:
        self._listener, self._on_end = listener, on_end
        if self.messages:
            queued, self.messages = self.messages, []
            self.put(queued)
        if self.error is not None:
            on_end(self.error)

    def put(self, messages: list[Any]) -> None:
        if self._listener is None:
            self.messages.extend(messages)
            self._wake()
            return
        try:
            self._listener(messages)
        except ProtocolError as exc:
            self.fail(exc)

    def fail(self, error: ProtocolError) -> None:
        first = self.error is None
        if first:
            self.error = error
        self._wake()
        if first and self._on_end is not None:
            self._on_end(error)

    async def take(self) -> list[Any]:
        while not self.messages:
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch, self.messages = self.messages, []
        return batch

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Receiving:
    """The receiving half both channels share: `receive` or `deliver_to`, fed by `_inbox`."""

    _inbox: _Inbox

    def close(self) -> None:
        raise NotImplementedError

    async def receive(self) -> list[Any]:
        return await self._inbox.take()

    def deliver_to(self, on_messages: Listener, on_end: EndListener) -> None:
        def end(error: ProtocolError) -> None:
            self.close()
            on_end(error)

        self._inbox.listen(on_messages, end)


class SocketChannel(_Receiving, asyncio.Protocol):
    """A channel over a stream socket, with flow control on the sending side."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._decoder = FrameDecoder(max_frame_size)
        self._inbox = _Inbox()
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []

    # asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            self._inbox.fail(exc)
            if self._transport is not None:
                self._transport.pause_reading()
            return
        if messages:
            self._inbox.put(messages)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._inbox.fail(ConnectionLost("the peer closed the connection"))
        self._resume_drainers()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._resume_drainers()

    # Channel ----------------------------------------------------------------------------
    def send(self, message: Any) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionLost("the connection is closed")
        transport.write(encode(message))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are: a frame already encoded (and measured), or, in tests
        that play a hostile peer, anything."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionLost("the connection is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        if self._paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def peer_credentials(self) -> tuple[int, int, int]:
        """(pid, uid, gid) of the process at the other end of a Unix socket."""
        if self._transport is None:
            raise ConnectionLost("the connection is closed")
        sock = self._transport.get_extra_info("socket")
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        pid, uid, gid = _PEERCRED.unpack(raw)
        return pid, uid, gid

    def _resume_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def open_unix_channel(
    path: str, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> SocketChannel:
    """Connect to a Unix socket; raises `OSError` when nothing listens there."""
    loop = asyncio.get_running_loop()
    _, channel = await loop.create_unix_connection(lambda: SocketChannel(max_frame_size), path)
    return channel


class MemoryChannel(_Receiving):
    """One end of an in-memory channel pair; frames are really encoded and decoded."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._decoder = FrameDecoder(max_frame_size)
        self._inbox = _Inbox()
        self._peer: MemoryChannel | None = None
        self._closed = False

    @classmethod
    def pair(
        cls, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    ) -> tuple[MemoryChannel, MemoryChannel]:
        left, right = cls(max_frame_size), cls(max_frame_size)
        left._peer, right._peer = right, left
        return left, right

    def send(self, message: Any) -> None:
        self.send_raw(encode(message))

    def send_raw(self, data: bytes) -> None:
        peer = self._peer
        if self._closed or peer is None or peer._closed:
            raise ConnectionLost("the connection is closed")
        try:
            messages = peer._decoder.feed(data)
        except ProtocolError as exc:
            peer._inbox.fail(exc)
            return
        if messages:
            peer._inbox.put(messages)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.fail(ConnectionLost("the connection is closed"))
        if self._peer is not None:
            self._peer._inbox.fail(ConnectionLost("the peer closed the connection"))

    @property
    def closed(self) -> bool:
        return self._closed
