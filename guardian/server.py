"""The guardian's socket servers: accept, check the peer, read frames, dispatch by permit.

One task per connection reads batches of frames. A permitted call's params are decoded
straight into its method's Struct (`protocol.contract`); params that do not fit get a typed
`invalid_params` on the open connection. Inline handlers answer on the spot; the
others run in tasks of their own, so calls on one connection are multiplexed. Anything a
sound peer never sends (a malformed or oversized frame, a method outside the permit table, a
call out of phase) closes that connection only and is logged on `sealgate.security`.

Backpressure, per connection: reading stops while the peer has more than `MAX_UNSENT_BYTES`
of replies it has not taken, or `MAX_IN_FLIGHT` calls are running, so a peer that sends and
never reads holds only its own connection. A reply over the frame limit fails its own call
with a typed error; it never goes out, since the peer would have to drop the connection.
The sandbox's uid may hold at most `[HUB_LIMITS] max_sandbox_connections` connections at once;
one more is closed as soon as it is accepted (a security event), before it costs anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import select
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian import telemetry
from guardian.calls.metering import LINK_LOST, SHUTDOWN
from guardian.dispatch import NOTIFICATIONS, PERMITS, Permit, Phase
from guardian.handlers import CallContext, Emit
from guardian.services import Services
from guardian.storage.base import StorageError
from guardian.telemetry_intake import SpanIntake
from protocol.channel import SocketChannel
from protocol.contract import Params, TraceContext, decode_params
from protocol.errors import (
    ConnectionLost,
    Internal,
    InvalidParams,
    ProtocolError,
    RPCError,
    Unavailable,
)
from protocol.framing import HEADER, encode
from protocol.messages import Notification, Request, parse, response, stream_chunk
from protocol.methods import Surface

logger = logging.getLogger("sealgate.guardian")
security_log = logging.getLogger("sealgate.security")

#: Replies a connection may have queued and unsent before the guardian stops reading it.
MAX_UNSENT_BYTES = 1024 * 1024
#: Calls one connection may have running before the guardian stops reading it; a batch that
#: was already read may take it to twice this, and calls past that are refused.
MAX_IN_FLIGHT = 1024
#: How often a connection that is not being read is checked for a hang-up.
HANGUP_POLL_S = 0.25
_HANGUP = select.POLLRDHUP | select.POLLHUP | select.POLLERR
#: In a flood of refused connections, one security log line per this many seconds.
REFUSAL_LOG_EVERY_S = 10.0


class SecurityViolation(ProtocolError):
    """The peer did something a sound client never does; its connection is closed."""


class _Window:
    """One streamed call's flow control: chunks sent and chunks the peer says it has read;
    the call waits while `size` chunks are unread, so a slow reader holds a bounded number
    of chunks (in the sandbox) and the provider's reply waits in its own socket."""

    __slots__ = ("_room", "read", "sent", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0
        self.read = 0
        self._room: asyncio.Future[None] | None = None

    @property
    def full(self) -> bool:
        return self.sent - self.read >= self.size

    async def wait_for_room(self) -> None:
        while self.full:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def acknowledge(self, count: int) -> None:
        # never more than was sent: an ack cannot open the window past its size
        self.read = min(self.sent, self.read + count)
        room = self._room
        if room is not None and not room.done() and not self.full:
            room.set_result(None)


@dataclass(slots=True, eq=False)  # compared and hashed by identity
class _Connection:
    channel: SocketChannel
    ctx: CallContext
    permits: dict[str, Permit]
    peer_pid: int
    phase: Phase = Phase.NEW
    used_once: set[str] = field(default_factory=set)
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    #: Stream chunks a call may send ahead of what the peer has read (`hello`'s
    #: `stream_window`; 0: none), and each streaming call's count.
    stream_window: int = 0
    windows: dict[int, _Window] = field(default_factory=dict)
    #: Calls waiting for room in their window: they do not hold the peer's reading back
    #: (its `stream.ack` is what they wait for).
    window_waits: int = 0
    #: Requests it has sent (`status` shows each sandbox process's, so an operator sees
    #: how `HUB_SANDBOX_WORKERS` processes share the load).
    calls: int = 0

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """A notification (raises `ConnectionLost` if the peer is gone)."""
        self.channel.send([2, method, params])


class _ServerChannel(SocketChannel):
    """A socket channel that hands itself to the server once connected, and stops reading
    while any reason to hold the peer back stands (unsent replies, calls in flight)."""

    def __init__(self, server: GuardianServer, surface: Surface, max_frame_size: int) -> None:
        super().__init__(max_frame_size)
        self._server = server
        self._surface = surface
        self._holds: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high=MAX_UNSENT_BYTES)
        self._server._spawn(self._server._serve(self, self._surface))

    def hold(self, reason: str) -> None:
        first = not self._holds
        self._holds.add(reason)
        if first and self._transport is not None and not self.closed:
            self._transport.pause_reading()
            self._watch_hangup()

    def release(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def _watch_hangup(self) -> None:
        """While reading is paused the event loop cannot see the peer hang up, and its calls
        would run on for nobody: poll for it (POLLRDHUP is set even with requests still
        unread), and end the connection as if it had been read."""
        if not self._holds or self.closed or self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        poller = select.poll()
        poller.register(sock.fileno(), _HANGUP)
        if poller.poll(0):
            self.close()
            self.connection_lost(None)
            return
        asyncio.get_running_loop().call_later(HANGUP_POLL_S, self._watch_hangup)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.hold("unsent replies")

    def resume_writing(self) -> None:
        super().resume_writing()
        self.release("unsent replies")


class GuardianServer:
    """Serves `guardian.sock` (the sandbox) and `admin.sock` (operators)."""

    def __init__(self, services: Services, *, sandbox_uid: int, max_frame_size: int) -> None:
        self.services = services
        self.sandboxes = services.sandboxes
        self.sandbox_uid = sandbox_uid
        self.max_frame_size = max_frame_size
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[tuple[Path, int]] = []  # (path, inode) of the sockets we made
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        #: Sandbox connections refused since the last security log line, and its time.
        self._refused = 0
        self._refusal_logged_at = -REFUSAL_LOG_EVERY_S
        self.span_intake = SpanIntake()  # the sandbox's `trace.spans`

    def allowed_uids(self, surface: Surface) -> frozenset[int]:
        if surface is Surface.SANDBOX:
            return frozenset({self.sandbox_uid})
        return frozenset({os.getuid(), 0})

    async def listen(self, path: Path, surface: Surface, mode: int) -> None:
        _remove_stale_socket(path)
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(
            lambda: _ServerChannel(self, surface, self.max_frame_size), str(path), backlog=512
        )
        os.chmod(path, mode)
        self._servers.append(server)
        self._sockets.append((path, path.lstat().st_ino))
        logger.info("listening on %s (%s, mode %o)", path, surface.value, mode)

    async def listen_abstract(self, name: str, surface: Surface) -> None:
        """Listen on an abstract-namespace name (single-uid mode's admin socket)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
        except OSError:
            sock.close()
            raise
        sock.listen(512)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(
            lambda: _ServerChannel(self, surface, self.max_frame_size), sock=sock
        )
        self._servers.append(server)
        logger.info("listening on abstract socket @%s (%s)", name[1:], surface.value)

    async def close(self) -> None:
        """Stop listening, end every connection, and remove the sockets we created; calls
        in progress are cancelled as `shutdown` and have recorded their endings (in the
        usage ledger) when this returns."""
        self._closing = True
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for path, inode in self._sockets:
            _remove_own_socket(path, inode)
        self._sockets.clear()

    # connection handling -----------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, channel: SocketChannel, surface: Surface) -> None:
        pid, uid, _ = channel.peer_credentials()
        if uid not in self.allowed_uids(surface):
            security_log.warning(
                "refused a %s connection from uid %d (pid %d): not an allowed uid",
                surface.value,
                uid,
                pid,
            )
            channel.close()
            return
        if surface is Surface.SANDBOX and not self._room_for_sandbox(uid, pid):
            channel.close()
            return
        ctx = CallContext(services=self.services, surface=surface)
        conn = _Connection(channel=channel, ctx=ctx, permits=dict(PERMITS[surface]), peer_pid=pid)
        if surface is Surface.SANDBOX:
            self.sandboxes.connected += 1
        ended: asyncio.Future[ProtocolError] = asyncio.get_running_loop().create_future()

        def on_messages(batch: list[Any]) -> None:
            # Runs in the socket's data callback: inline handlers answer without a wakeup.
            for raw in batch:
                message = parse(raw)
                if isinstance(message, Request):
                    self._dispatch(conn, message)
                elif isinstance(message, Notification):
                    self._notified(conn, message)
                else:
                    raise SecurityViolation("sent a response or a stream frame")

        def on_end(error: ProtocolError) -> None:
            if not ended.done():
                ended.set_result(error)

        channel.deliver_to(on_messages, on_end)
        try:
            error = await ended
            if not isinstance(error, ConnectionLost):
                security_log.warning(
                    "closed a %s connection from uid %d (pid %d): %s",
                    surface.value,
                    uid,
                    pid,
                    error,
                )
        finally:
            channel.close()
            self.sandboxes.gone(conn)
            if surface is Surface.SANDBOX:
                self.sandboxes.connected -= 1
            # Calls of a connection that ended are cancelled with the reason, and each records
            # its own ending (the ledger row, billing what was consumed): wait for them, so
            # none outlives its connection unobserved.
            reason = SHUTDOWN if self._closing else LINK_LOST
            running = list(conn.tasks.values())
            for task in running:
                task.cancel(reason)
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def _room_for_sandbox(self, uid: int, pid: int) -> bool:
        """Whether one more sandbox connection fits under `[HUB_LIMITS]`
        `max_sandbox_connections`; a refusal is a security event (a sound sandbox holds one
        connection per worker), logged at most once per `REFUSAL_LOG_EVERY_S` in a flood."""
        cap = self.services.live.snapshot.config.hub_limits.max_sandbox_connections
        if self.sandboxes.connected < cap:
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_EVERY_S:
            security_log.warning(
                "refused %d sandbox connection(s), the latest from uid %d (pid %d): %d are"
                " open, the most [HUB_LIMITS] max_sandbox_connections allows",
                self._refused,
                uid,
                pid,
                self.sandboxes.connected,
            )
            self._refused, self._refusal_logged_at = 0, now
        return False

    def _dispatch(self, conn: _Connection, request: Request) -> None:
        method = request.method
        conn.calls += 1
        permit = conn.permits.get(method)
        if permit is None:
            raise SecurityViolation(f"method {method[:64]!r} is not permitted on this socket")
        if conn.phase not in permit.phases:
            raise SecurityViolation(f"method {method!r} is not allowed in phase {conn.phase.value}")
        if permit.once and method in conn.used_once:
            raise SecurityViolation(f"method {method!r} may be called once only")
        if request.msgid in conn.tasks:
            raise SecurityViolation(f"msgid {request.msgid} is already in flight")
        if permit.once:
            conn.used_once.add(method)
        try:
            params = decode_params(permit.spec.params, request.params)
        except InvalidParams as exc:
            self._answer(conn, request.msgid, exc, None)
            return
        if permit.inline is not None:
            try:
                result = permit.inline(conn.ctx, params)
            except RPCError as exc:
                self._answer(conn, request.msgid, exc, None)
                return
            except Exception:
                logger.exception("handler %s failed", method)
                self._answer(
                    conn, request.msgid, Internal("the guardian hit an internal error"), None
                )
                return
            self._answer(conn, request.msgid, None, result)
            if method == "hello":
                conn.phase = Phase.READY
                if "stream.ack" in NOTIFICATIONS[conn.ctx.surface]:  # it can open one
                    conn.stream_window = getattr(params, "stream_window", None) or 0
                if conn.ctx.surface is Surface.SANDBOX:
                    self.sandboxes.ready(conn)
            return
        if len(conn.tasks) >= 2 * MAX_IN_FLIGHT:
            self._answer(
                conn,
                request.msgid,
                Unavailable(f"more than {2 * MAX_IN_FLIGHT} calls in flight on this connection"),
                None,
            )
            return
        task = asyncio.get_running_loop().create_task(self._run(conn, request, permit, params))
        conn.tasks[request.msgid] = task
        if len(conn.tasks) - conn.window_waits >= MAX_IN_FLIGHT:
            self._hold(conn, "calls in flight")

    async def _run(
        self, conn: _Connection, request: Request, permit: Permit, params: Params
    ) -> None:
        ctx = conn.ctx
        if permit.spec.streaming:
            ctx = dataclasses.replace(ctx, emit=self._emitter(conn, request.msgid))
        # Every secret the call may take stays redacted until its answer is written, even if
        # a reload drops it meanwhile.
        with self.services.live.redactor.call(), self._rpc_span(request.method, params):
            await self._run_call(conn, request, permit, ctx, params)

    @staticmethod
    def _rpc_span(method: str, params: Params) -> contextlib.AbstractContextManager[Any]:
        """The call's server span, a child of the sandbox's span its `trace` names (a no-op
        when tracing is off)."""
        if not telemetry.enabled():
            return contextlib.nullcontext()
        trace = getattr(params, "trace", None)
        parent = trace.traceparent if isinstance(trace, TraceContext) else None
        return telemetry.span(
            method,
            kind=telemetry.SERVER,
            attributes={"rpc.system": "sealgate", "rpc.method": method},
            parent=parent,
        )

    async def _run_call(
        self,
        conn: _Connection,
        request: Request,
        permit: Permit,
        ctx: CallContext,
        params: Params,
    ) -> None:
        if permit.task is None:
            raise RuntimeError(f"permit for {request.method!r} has no handler")
        try:
            result = await permit.task(ctx, params)
        except asyncio.CancelledError:
            return
        except RPCError as exc:
            self._answer(conn, request.msgid, exc, None)
        except StorageError as exc:
            # the database is away or refused: a typed answer, no traceback, no SQL detail
            logger.warning("%s: the database failed: %s", request.method, exc)
            unavailable = Unavailable("the guardian's database is unavailable; try again later")
            self._answer(conn, request.msgid, unavailable, None)
        except Exception:
            logger.exception("handler %s failed", request.method)
            self._answer(conn, request.msgid, Internal("the guardian hit an internal error"), None)
        else:
            self._answer(conn, request.msgid, None, result)
        finally:
            conn.tasks.pop(request.msgid, None)
            conn.windows.pop(request.msgid, None)
            if len(conn.tasks) - conn.window_waits < MAX_IN_FLIGHT:
                self._release(conn, "calls in flight")

    @staticmethod
    def _hold(conn: _Connection, reason: str) -> None:
        if isinstance(conn.channel, _ServerChannel):
            conn.channel.hold(reason)

    @staticmethod
    def _release(conn: _Connection, reason: str) -> None:
        if isinstance(conn.channel, _ServerChannel):
            conn.channel.release(reason)

    def _emitter(self, conn: _Connection, msgid: int) -> Emit:
        channel = conn.channel
        window = None
        if conn.stream_window:
            window = conn.windows[msgid] = _Window(conn.stream_window)

        async def emit(chunk: Any) -> None:
            frame = encode(stream_chunk(msgid, chunk))
            if len(frame) - HEADER.size > self.max_frame_size:
                raise Internal(
                    f"a stream chunk of {len(frame)} bytes is over the RPC frame limit"
                    f" ({self.max_frame_size} bytes)"
                )
            if window is not None and window.full:
                await self._wait_for_room(conn, window)
            channel.send_raw(frame)
            if window is not None:
                window.sent += 1
            await channel.drain()  # a slow sandbox slows the provider read, not our memory

        return emit

    async def _wait_for_room(self, conn: _Connection, window: _Window) -> None:
        """Wait for the peer to read (its `stream.ack`); meanwhile this call does not count
        towards holding the connection's reading back, or the ack could not arrive."""
        conn.window_waits += 1
        if len(conn.tasks) - conn.window_waits < MAX_IN_FLIGHT:
            self._release(conn, "calls in flight")
        try:
            await window.wait_for_room()
        finally:
            conn.window_waits -= 1

    def _notified(self, conn: _Connection, message: Notification) -> None:
        surface = conn.ctx.surface
        if message.method not in NOTIFICATIONS[surface] or conn.phase is not Phase.READY:
            raise SecurityViolation(f"notification {message.method[:64]!r} is not permitted")
        if message.method == "cancel":
            msgid = message.params.get("msgid")
            if type(msgid) is not int:
                raise SecurityViolation("cancel without an integer msgid")
            task = conn.tasks.get(msgid)
            if task is not None:
                task.cancel()
        elif message.method == "stream.ack":
            msgid, count = message.params.get("msgid"), message.params.get("n")
            if type(msgid) is not int or type(count) is not int or not 0 < count <= 2**31:
                raise SecurityViolation("stream.ack without an integer msgid and count")
            window = conn.windows.get(msgid)
            if window is not None:  # else the stream has just ended: nothing to open
                window.acknowledge(count)
        elif message.method == "trace.spans":
            try:
                self.span_intake.take(message.params)
            except InvalidParams as exc:
                raise SecurityViolation(f"trace.spans: {exc.message}") from None

    def _answer(self, conn: _Connection, msgid: int, error: RPCError | None, result: Any) -> None:
        wire = None
        if error is not None:
            wire = error.to_wire()
            wire["message"] = self.services.live.redactor.redact(wire["message"])
        frame = encode(response(msgid, wire, result))
        if len(frame) - HEADER.size > self.max_frame_size:
            # The peer would drop the connection, and every other call on it: fail this one.
            logger.warning(
                "the answer to call %d is %d bytes, over the frame limit; sent an error instead",
                msgid,
                len(frame),
            )
            too_large = Internal(
                f"the answer is {len(frame)} bytes, over the RPC frame limit"
                f" ({self.max_frame_size} bytes); ask for less"
            )
            frame = encode(response(msgid, too_large.to_wire(), None))
        with contextlib.suppress(ConnectionLost):
            conn.channel.send_raw(frame)


def _remove_own_socket(path: Path, inode: int) -> None:
    """Unlink the socket we bound, unless something else has replaced it since."""
    try:
        if path.lstat().st_ino == inode:
            path.unlink()
    except FileNotFoundError:
        pass


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a previous run; refuse to remove anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it.")
    path.unlink()
