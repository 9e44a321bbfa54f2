"""The sandboxes connected to `guardian.sock`: counted for `status`, their pids for the
protections report, and told when what is active changes.

It exists apart from the server so the services can be built whole before the server
listens: the configuration announces its changes here, and the server fills it in.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from protocol.errors import ConnectionLost


class SandboxLink(Protocol):
    peer_pid: int
    calls: int

    def notify(self, method: str, params: dict[str, Any]) -> None: ...


class SandboxLinks:
    def __init__(self) -> None:
        #: Connections on the sandbox socket, whether or not past their hello.
        self.connected = 0
        self._ready: set[SandboxLink] = set()

    def ready(self, link: SandboxLink) -> None:
        """A sandbox passed its hello: it gets notifications from now on."""
        self._ready.add(link)

    def gone(self, link: SandboxLink) -> None:
        self._ready.discard(link)

    def pids(self) -> list[int]:
        return [link.peer_pid for link in self._ready]

    def links(self) -> list[dict[str, int]]:
        """Each sandbox process past its hello: its pid and the requests it has sent."""
        return sorted(
            ({"pid": link.peer_pid, "calls": link.calls} for link in self._ready),
            key=lambda seen: seen["pid"],
        )

    def broadcast(self, method: str, params: dict[str, Any]) -> None:
        for link in list(self._ready):
            with contextlib.suppress(ConnectionLost):
                link.notify(method, params)

    def announce(self, names: dict[str, list[str]]) -> None:
        """What is active changed (`config.changed`)."""
        self.broadcast("config.changed", names)

    def upstream_changed(self, servers: list[str]) -> None:
        """The upstream tools some servers serve changed (`mcp.changed`): an approval, a
        pin that now hides a tool, a server gone or back."""
        self.broadcast("mcp.changed", {"servers": servers})
