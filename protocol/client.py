"""The asyncio RPC client: many calls in flight on one connection, each with its own timeout.

The client owns one channel at a time. A background task connects, says `hello`, then reads
responses and hands each to the call waiting for it. When the connection drops, every call in
flight fails at once with `Unavailable` (never a hang), and the task reconnects with capped
exponential backoff; calls made while disconnected fail immediately with `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from protocol import PROTOCOL_VERSION
from protocol.channel import Channel
from protocol.errors import (
    ConnectionLost,
    Internal,
    InvalidParams,
    ProtocolError,
    RPCError,
    Timeout,
    Unavailable,
    error_from_wire,
)
from protocol.framing import DEFAULT_MAX_FRAME_SIZE, HEADER, encode
from protocol.messages import MAX_MSGID, Notification, Response, StreamChunk, parse
from protocol.messages import notification as notification_message
from protocol.messages import request as request_message

logger = logging.getLogger("sealgate.rpc")

DEFAULT_CALL_TIMEOUT = 30.0
DEFAULT_BACKOFF_INITIAL = 0.05
DEFAULT_BACKOFF_MAX = 2.0

Connector = Callable[[], Awaitable[Channel]]
NotificationHandler = Callable[[str, dict[str, Any]], None]
ConnectHandler = Callable[[dict[str, Any]], None]


class ClientState(enum.Enum):
    NEW = "new"  # created; start() not called yet
    CONNECTING = "connecting"  # no usable connection; calls fail with Unavailable
    CONNECTED = "connected"  # hello answered; calls go out
    CLOSED = "closed"  # close() called; the client cannot be used again


class RPCStream:
    """The chunks of one streaming call, then its final result.

    Use as `async with client.stream(...) as stream: async for chunk in stream: ...`; leaving
    the block before the end cancels the call on the guardian.
    """

    def __init__(
        self, client: RPCClient, msgid: int, method: str, timeout: float, ack_every: int = 0
    ) -> None:
        self._client = client
        self.msgid = msgid
        self.method = method
        self.timeout = timeout
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.result: Any = None
        self.finished = False
        #: With a stream window, chunks read since the last `stream.ack`, sent every
        #: `ack_every` (half the window): the guardian never has more than the window unread.
        self._ack_every = ack_every
        self._unacked = 0

    def __aiter__(self) -> RPCStream:
        return self

    async def __anext__(self) -> Any:
        if self.finished:
            raise StopAsyncIteration
        try:
            # asyncio.timeout, not wait_for: no task per chunk on Python 3.11
            async with asyncio.timeout(self.timeout):
                item = await self.queue.get()
        except TimeoutError:
            await self.aclose()
            raise Timeout(f"'{self.method}' sent nothing for {self.timeout:g} s") from None
        if isinstance(item, _StreamEnd):
            self.finished = True
            self.result = item.result
            self._client._streams.pop(self.msgid, None)
            raise StopAsyncIteration
        if isinstance(item, RPCError):
            self.finished = True
            self._client._streams.pop(self.msgid, None)
            raise item
        if self._ack_every:
            self._unacked += 1
            if self._unacked >= self._ack_every:
                self._client._send_ack(self.msgid, self._unacked)
                self._unacked = 0
        return item

    async def aclose(self) -> None:
        """Stop the call if it is still running; safe to call more than once."""
        if not self.finished:
            self.finished = True
            self._client._streams.pop(self.msgid, None)
            self._client._send_cancel(self.msgid)

    async def __aenter__(self) -> RPCStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _StreamEnd:
    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result


class RPCClient:
    """Calls guardian methods over whatever channel `connect` returns."""

    def __init__(
        self,
        connect: Connector,
        *,
        client_name: str,
        hello_params: Mapping[str, Any] | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        on_connect: ConnectHandler | None = None,
        on_notification: NotificationHandler | None = None,
        stream_window: int = 0,
    ) -> None:
        self._connect = connect
        self._client_name = client_name
        #: Extra facts this client states in every `hello` (the sandbox: where it listens).
        self._hello_params = dict(hello_params or {})
        #: Stream chunks the guardian may send ahead of what a stream's reader has taken
        #: (said in `hello`; 0: no window, the guardian sends as fast as the socket takes).
        self.stream_window = stream_window
        if stream_window:
            self._hello_params["stream_window"] = stream_window
        self.max_frame_size = max_frame_size
        self.call_timeout = call_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._on_connect = on_connect
        self._on_notification = on_notification
        self.state = ClientState.NEW
        self.hello: dict[str, Any] = {}
        self.last_error = "not connected yet"
        self._channel: Channel | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[int, RPCStream] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        if self.state is not ClientState.NEW:
            raise RuntimeError(f"start() called on a client that is {self.state.value}.")
        self.state = ClientState.CONNECTING
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rpc-client")

    async def wait_connected(self, timeout: float) -> bool:
        """True once connected; False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self.state = ClientState.CLOSED
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            self._channel.close()
        self._fail_all("the RPC client was closed")

    @property
    def connected(self) -> bool:
        return self.state is ClientState.CONNECTED

    # calls -------------------------------------------------------------------------------
    async def call(self, method: str, params: dict[str, Any], timeout: float | None = None) -> Any:
        """Send one request and wait for its result, or raise its typed error."""
        channel = self._usable_channel()
        msgid = self._next_id()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[msgid] = future
        limit = self.call_timeout if timeout is None else timeout
        timer = loop.call_later(limit, _expire, future, method, limit)
        try:
            channel.send_raw(self._frame(msgid, method, params))
            return await future
        finally:
            timer.cancel()
            self._pending.pop(msgid, None)

    def stream(
        self, method: str, params: dict[str, Any], timeout: float | None = None
    ) -> RPCStream:
        """Start a streaming call; iterate the returned object for its chunks.

        `timeout` bounds the wait for each chunk. After the loop, `.result` holds the final
        response's result; a final error is raised from the loop. Leaving early (or being
        cancelled) and calling `aclose()` sends `cancel {msgid}`, so the guardian stops work.
        """
        channel = self._usable_channel()
        msgid = self._next_id()
        frame = self._frame(msgid, method, params)
        stream = RPCStream(
            self,
            msgid,
            method,
            self.call_timeout if timeout is None else timeout,
            ack_every=max(1, self.stream_window // 2) if self.stream_window else 0,
        )
        self._streams[msgid] = stream
        channel.send_raw(frame)
        return stream

    # internals ---------------------------------------------------------------------------
    def _frame(self, msgid: int, method: str, params: dict[str, Any]) -> bytes:
        """The encoded request; one the guardian would refuse as too large fails this call
        alone (the guardian would close the connection, and every other call on it)."""
        try:
            frame = encode(request_message(msgid, method, params))
        except UnicodeEncodeError:
            # JSON may carry a lone surrogate escape ("\ud8d2") that no UTF-8 can hold.
            raise InvalidParams(
                "the request holds text that is not valid Unicode (a lone surrogate)"
            ) from None
        except (OverflowError, ValueError, TypeError) as exc:
            # an integer over 64 bits, or nesting past msgpack's depth limit
            raise InvalidParams(f"the request cannot be sent: {type(exc).__name__}") from None
        if len(frame) - HEADER.size > self.max_frame_size:
            raise InvalidParams(
                f"the request is {len(frame)} bytes, over the RPC frame limit"
                f" ({self.max_frame_size} bytes); send less"
            )
        return frame

    def _usable_channel(self) -> Channel:
        if self.state is ClientState.CLOSED:
            raise RuntimeError("This RPC client has been closed; create a new one.")
        channel = self._channel
        if self.state is not ClientState.CONNECTED or channel is None:
            raise Unavailable(f"guardian unavailable: {self.last_error}")
        return channel

    def _next_id(self) -> int:
        msgid = next(self._ids)
        if msgid > MAX_MSGID:
            self._ids = itertools.count(1)
            msgid = next(self._ids)
        return msgid

    def _send_cancel(self, msgid: int) -> None:
        channel = self._channel
        if channel is not None and not channel.closed:
            with contextlib.suppress(ConnectionLost):
                channel.send(notification_message("cancel", {"msgid": msgid}))

    def _send_ack(self, msgid: int, count: int) -> None:
        """`stream.ack {msgid, n}`: `n` more chunks of the stream were read."""
        channel = self._channel
        if channel is not None and not channel.closed:
            with contextlib.suppress(ConnectionLost):
                channel.send(notification_message("stream.ack", {"msgid": msgid, "n": count}))

    async def _run(self) -> None:
        delay = self._backoff_initial
        while self.state is not ClientState.CLOSED:
            try:
                channel = await self._connect()
            except OSError as exc:
                self.last_error = f"cannot connect ({exc.strerror or exc})"
                await asyncio.sleep(delay)
                if self.hello:  # before the first connection the peer is starting: no backoff
                    delay = min(delay * 2, self._backoff_max)
                continue
            self._channel = channel
            reader = asyncio.get_running_loop().create_task(self._read(channel))
            try:
                self.hello = await self._handshake(channel)
            except (RPCError, ProtocolError) as exc:
                self.last_error = f"handshake failed ({exc})"
                channel.close()
                await asyncio.gather(reader, return_exceptions=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            delay = self._backoff_initial
            self.state = ClientState.CONNECTED
            self._connected.set()
            logger.info("connected to the guardian")
            if self._on_connect is not None:
                try:
                    self._on_connect(self.hello)
                except Exception:
                    logger.exception("the on_connect handler failed")
            await asyncio.gather(reader, return_exceptions=True)
            if self.state is ClientState.CLOSED:
                return
            logger.warning("lost the guardian connection (%s); reconnecting", self.last_error)
            self.state = ClientState.CONNECTING
            self._connected.clear()

    async def _handshake(self, channel: Channel) -> dict[str, Any]:
        msgid = self._next_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msgid] = future
        try:
            channel.send(
                request_message(
                    msgid,
                    "hello",
                    {
                        "protocol_version": PROTOCOL_VERSION,
                        "client": self._client_name,
                        **self._hello_params,
                    },
                )
            )
            async with asyncio.timeout(self.call_timeout):
                result = await future
        except TimeoutError:
            raise Timeout("hello was not answered") from None
        finally:
            self._pending.pop(msgid, None)
        if not isinstance(result, dict):
            raise Internal("hello answered with something other than a map")
        return result

    async def _read(self, channel: Channel) -> None:
        """Deliver responses straight from the channel's callback until the channel ends."""
        ended: asyncio.Future[ProtocolError] = asyncio.get_running_loop().create_future()

        def on_messages(batch: list[Any]) -> None:
            for raw in batch:
                self._deliver(parse(raw))

        def on_end(error: ProtocolError) -> None:
            if not ended.done():
                ended.set_result(error)

        channel.deliver_to(on_messages, on_end)
        try:
            self.last_error = str(await ended)
        finally:
            channel.close()
            self._channel = None
            self._fail_all(f"guardian unavailable: {self.last_error}")

    def _deliver(self, message: object) -> None:
        if isinstance(message, Response):
            stream = self._streams.get(message.msgid)
            if stream is not None:
                stream.queue.put_nowait(
                    _StreamEnd(message.result)
                    if message.error is None
                    else error_from_wire(message.error)
                )
                return
            future = self._pending.get(message.msgid)
            if future is None or future.done():
                return  # the caller timed out or went away; drop the late answer
            if message.error is None:
                future.set_result(message.result)
            else:
                future.set_exception(error_from_wire(message.error))
        elif isinstance(message, StreamChunk):
            stream = self._streams.get(message.msgid)
            if stream is not None:
                stream.queue.put_nowait(message.chunk)
        elif isinstance(message, Notification):
            if self._on_notification is not None:
                self._on_notification(message.method, message.params)
        else:
            raise ProtocolError("the guardian sent a request; only the sandbox asks")

    def _fail_all(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(Unavailable(reason))
        for stream in self._streams.values():
            stream.queue.put_nowait(Unavailable(reason))


def _expire(future: asyncio.Future[Any], method: str, limit: float) -> None:
    if not future.done():
        future.set_exception(Timeout(f"'{method}' was not answered within {limit:g} s"))
