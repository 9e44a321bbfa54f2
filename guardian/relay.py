"""Any replica answers: session ids any guardian can check, and legacy SSE messages relayed to
the replica whose sandbox holds the stream.

Streamable HTTP: the sandbox that opens a session asks for its id here (`issue`); a sandbox
meeting an id it did not open asks whether it is the caller's (`check`). The key is one row
of the shared database, the same for every guardian, and never leaves the guardian.

Legacy SSE (`/sse`): the stream lives in one sandbox, while the client's POSTs may land on any
replica. The holding sandbox keeps a `relay.listen` call open; a POST elsewhere becomes
`relay.post` on that replica's guardian, which checks the principal against the session's
row, stores the message as a row and sends `NOTIFY sealgate_relay`; the holding guardian
takes the row and hands the message to its sandbox. The sandbox never touches PostgreSQL.
On SQLite there is one guardian: a message for a stream held here is handed over directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from guardian.relay_ids import SessionIds
from guardian.storage import Storage
from guardian.storage.base import StorageError
from protocol.errors import NotFound, Unavailable

logger = logging.getLogger("sealgate.guardian.relay")

CHANNEL = "sealgate_relay"
KEY_NAME = "mcp-session-ids"
#: Each holder also polls for rows whose NOTIFY it missed (a lost LISTEN connection).
POLL_S = 1.0
#: A POST may race the stream's registration on another replica: it waits this long.
REGISTRATION_WAIT_S = 2.0
#: Messages nobody took are swept after this long.
MESSAGE_TTL_S = 60.0
#: Messages waiting in one stream's queue before a relayed POST is refused.
QUEUE_SIZE = 256


class _Listening(Protocol):
    def closed(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Stream:
    owner: str
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Relay:
    """The session-id signer and the legacy SSE relay of one guardian."""

    def __init__(
        self, storage: Storage, replica: str, now: Callable[[], float] = time.time
    ) -> None:
        self.storage = storage
        self.replica = replica
        self.shared = storage.kind == "postgresql"
        self._now = now
        self._ids: SessionIds | None = None
        self._streams: dict[str, _Stream] = {}
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Read (or make) the deployment's key; forget streams this guardian held before."""
        key = await self.storage.deployment_key(KEY_NAME, secrets.token_hex(32), self._now())
        self._ids = SessionIds(bytes.fromhex(key), self._now)
        if self.shared:
            await self.storage.drop_relay_sessions_of(self.replica)

    def _signer(self) -> SessionIds:
        if self._ids is None:
            raise Unavailable("the relay is starting")
        return self._ids

    # Streamable HTTP session ids ---------------------------------------------------------
    def issue(self, principal: str) -> str:
        return self._signer().issue(principal)

    def check(self, session_id: str, principal: str) -> None:
        """`NotFound` unless the id is this deployment's, unexpired and `principal`'s."""
        if not self._signer().check(session_id, principal):
            raise NotFound("no such session")

    # legacy SSE streams --------------------------------------------------------------------
    async def listen(
        self, session_id: str, owner: str, emit: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Hold `session_id`'s stream for `owner` until cancelled, emitting what is relayed."""
        if session_id in self._streams:
            raise NotFound("no such session")
        if self.shared and not await self.storage.add_relay_session(
            session_id, owner, self.replica, self._now()
        ):
            raise NotFound("no such session")
        stream = _Stream(owner)
        self._streams[session_id] = stream
        self._wake.set()  # messages may already wait for it
        try:
            while True:
                await emit({"message": await stream.queue.get()})
        finally:
            del self._streams[session_id]
            if self.shared:
                with contextlib.suppress(StorageError):
                    await asyncio.shield(self.storage.drop_relay_sessions([session_id]))

    async def post(self, session_id: str, owner: str, message: str) -> None:
        """Relay one message to the stream, if it is `owner`'s (else `NotFound`, as for a
        stream that does not exist)."""
        stream = self._streams.get(session_id)
        if stream is not None:
            self._hand(stream, owner, message)
            return
        if not self.shared:
            raise NotFound("no such session")
        found = await self._owner_of(session_id)
        if found != owner:
            raise NotFound("no such session")
        stream = self._streams.get(session_id)  # it may have come here meanwhile
        if stream is not None:
            self._hand(stream, owner, message)
            return
        message_id = await self.storage.add_relay_message(session_id, message, self._now())
        await self.storage.notify(CHANNEL, str(message_id))

    @staticmethod
    def _hand(stream: _Stream, owner: str, message: str) -> None:
        if stream.owner != owner:
            raise NotFound("no such session")
        try:
            stream.queue.put_nowait(message)
        except asyncio.QueueFull:
            raise Unavailable("the session's stream is not reading; try again") from None

    async def _owner_of(self, session_id: str) -> str | None:
        """The stream's owner; a stream opened a moment ago on another replica may not be
        registered yet, so an unknown one is looked for a little longer."""
        deadline = time.monotonic() + REGISTRATION_WAIT_S
        while True:
            owner = await self.storage.relay_session_owner(session_id)
            if owner is not None or time.monotonic() >= deadline:
                return owner
            await asyncio.sleep(0.1)

    # delivery --------------------------------------------------------------------------
    def _heard(self, _payload: str) -> None:
        self._wake.set()

    async def _deliver(self) -> None:
        """Take the rows waiting for streams held here, oldest first."""
        held = list(self._streams)
        for start in range(0, len(held), 500):
            for row in await self.storage.relay_messages_for(held[start : start + 500]):
                stream = self._streams.get(str(row["session_id"]))
                if stream is None or not await self.storage.take_relay_message(int(row["id"])):
                    continue
                try:
                    stream.queue.put_nowait(str(row["body"]))
                except asyncio.QueueFull:
                    logger.warning("a relayed message was dropped: its stream is not reading")

    async def run(self) -> None:
        """Hear NOTIFY (reconnecting when the connection is lost), deliver, and sweep."""
        if not self.shared:
            return
        listening: _Listening | None = None
        swept = 0.0
        try:
            while True:
                if listening is None or listening.closed():
                    listening = await self._listen(listening)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                self._wake.clear()
                try:
                    await self._deliver()
                    if time.monotonic() - swept > MESSAGE_TTL_S:
                        swept = time.monotonic()
                        await self.storage.sweep_relay_messages(self._now() - MESSAGE_TTL_S)
                except StorageError as exc:
                    logger.warning("relay: the database is away (%s); retrying", exc)
        finally:
            if listening is not None:
                await listening.close()

    async def _listen(self, old: _Listening | None) -> _Listening | None:
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        try:
            listening: _Listening = await self.storage.listen(CHANNEL, self._heard)
        except StorageError as exc:
            logger.warning("relay: cannot LISTEN (%s); polling meanwhile", exc)
            return None
        return listening
