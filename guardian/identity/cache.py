"""Resolved principals, cached for `CACHE_S` seconds by a hash of the credential.

A revocation takes effect within that time, and at once for every change made here (an
operator's, a lockout, an OAuth family revoked): each calls `forget`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from guardian.identity.principal import Principal

CACHE_S = 5.0
MAX_ENTRIES = 10_000


class PrincipalCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}
        #: Called after `forget`: tells the other replicas (guardian/broadcast.py).
        self.on_forget: Callable[[], None] | None = None

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, principal: Principal) -> None:
        if len(self._entries) > MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + CACHE_S, principal)

    def forget(self) -> None:
        """Drop every cached resolution (after any change to who may do what), here and on
        every replica."""
        self._entries.clear()
        if self.on_forget is not None:
            self.on_forget()

    def clear(self) -> None:
        """Drop every cached resolution here (another replica made the change)."""
        self._entries.clear()
