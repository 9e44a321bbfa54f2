"""The sandbox's only way to the guardian: one thin typed stub per sealed RPC.

Each stub is named like the guardian handler it reaches. The link keeps one multiplexed
connection, reconnects on its own when the guardian restarts, and raises `Unavailable` at
once while it is down, so no request hangs on a missing guardian.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.channel import open_unix_channel
from protocol.client import RPCClient

logger = logging.getLogger("sealgate.sandbox.link")

DEFAULT_CALL_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class ActiveNames:
    """What the guardian says is usable now: names only, never a key or an endpoint."""

    llm_providers: tuple[str, ...] = ()
    search_providers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ActiveNames:
        def names(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

        return cls(names("llm_providers"), names("search_providers"), names("tools"))


ActiveListener = Callable[[ActiveNames], None]


class GuardianLink:
    def __init__(self, socket_path: Path, *, max_frame_size: int) -> None:
        self.socket_path = socket_path
        self.active = ActiveNames()
        self._listeners: list[ActiveListener] = []

        async def connect() -> Any:
            return await open_unix_channel(str(socket_path), max_frame_size)

        self._client = RPCClient(
            connect,
            client_name="sandbox",
            call_timeout=DEFAULT_CALL_TIMEOUT,
            on_connect=self._connected,
            on_notification=self._notified,
        )

    def on_active_change(self, listener: ActiveListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        self._client.start()

    async def wait_connected(self, timeout: float) -> bool:
        return await self._client.wait_connected(timeout)

    async def close(self) -> None:
        await self._client.close()

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def last_error(self) -> str:
        return self._client.last_error

    # sealed calls ------------------------------------------------------------------------
    async def health(self, timeout: float | None = None) -> dict[str, Any]:
        return await self._client.call("health", {}, timeout=timeout)

    # guardian events ---------------------------------------------------------------------
    def _connected(self, hello: dict[str, Any]) -> None:
        self._set_active(ActiveNames.from_wire(hello))

    def _notified(self, method: str, params: dict[str, Any]) -> None:
        if method == "config.changed":
            self._set_active(ActiveNames.from_wire(params))
        else:
            logger.warning("ignored an unknown notification from the guardian: %.64s", method)

    def _set_active(self, active: ActiveNames) -> None:
        changed = active != self.active
        self.active = active
        if changed:
            for listener in self._listeners:
                listener(active)
