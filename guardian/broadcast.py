"""Changes one guardian makes that every guardian on the database must apply at once: a
configuration reload, and any change to who may do what (a token revoked, a user deleted or
locked, a session ended, a grant withdrawn). The one that made the change sends
`NOTIFY sealgate_changes '<replica> <kind>'`; each other guardian hears it and applies the
same change to itself: `config` re-reads its own configuration file (the one source, which
every replica mounts alike: a ConfigMap, or one file), `identity` drops its cache of resolved
credentials. A guardian that missed a notification (its LISTEN connection lost) catches up
within the cache's own few seconds; a reload it missed waits for the next one, or SIGHUP.
On SQLite there is one guardian, and nothing to tell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from guardian.storage import Storage
from guardian.storage.base import StorageError

logger = logging.getLogger("sealgate.guardian.broadcast")

CHANNEL = "sealgate_changes"
KINDS = frozenset({"config", "identity"})
RECONNECT_S = 1.0


class Broadcast:
    def __init__(self, storage: Storage, replica: str) -> None:
        self.storage = storage
        self.replica = replica
        self.shared = storage.kind == "postgresql"
        self._handlers: dict[str, Callable[[], None]] = {}
        #: set while applying another guardian's change, so it is not announced back
        self._applying = False
        self._pending: set[asyncio.Task[None]] = set()
        # the replica name holds no space; the kind follows the last one
        self._me = replica.replace(" ", "_")

    def on(self, kind: str, handler: Callable[[], None]) -> None:
        self._handlers[kind] = handler

    def announce(self, kind: str) -> None:
        """Tell the other guardians (from synchronous code: the send runs beside it)."""
        if not self.shared or self._applying:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._send(kind))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, kind: str) -> None:
        try:
            await self.storage.notify(CHANNEL, f"{self._me} {kind}")
        except StorageError as exc:
            logger.warning("could not tell the other replicas of a %s change: %s", kind, exc)

    def _heard(self, payload: str) -> None:
        sender, _, kind = payload.rpartition(" ")
        if sender == self._me or kind not in KINDS:
            return
        handler = self._handlers.get(kind)
        if handler is None:
            return
        self._applying = True
        try:
            handler()
        except Exception:
            logger.exception("applying another replica's %s change failed", kind)
        finally:
            self._applying = False
        logger.info("applied another replica's %s change", kind)

    async def run(self) -> None:
        if not self.shared:
            return
        listening: Any = None
        try:
            while True:
                if listening is None or listening.closed():
                    try:
                        listening = await self.storage.listen(CHANNEL, self._heard)
                    except StorageError as exc:
                        logger.warning("cannot hear other replicas' changes yet: %s", exc)
                        listening = None
                await asyncio.sleep(RECONNECT_S)
        finally:
            if listening is not None:
                with contextlib.suppress(Exception):
                    await listening.close()
