"""The upstream connections in force: one per configured server, following the configuration.

A reload (or a secret-store change) that alters a server's block or its credential closes
that server's session and opens a new one; the others keep theirs. Calls and latency are
counted here per server and tool, for `mcp list` (the usage ledger has the rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guardian.liveconfig import LiveConfig
from guardian.snapshot import Snapshot
from protocol.pyfun import McpServerConfig

if TYPE_CHECKING:
    from guardian.upstream.connection import Connection
    from guardian.upstream.launcher import Launcher

logger = logging.getLogger("sealgate.guardian.upstream")

#: How often the pool looks for a new snapshot (a reload swaps it whole).
FOLLOW_EVERY_S = 1.0


@dataclass(slots=True)
class ToolFigures:
    calls: int = 0
    errors: int = 0
    total_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        mean = round(self.total_ms / self.calls, 3) if self.calls else 0.0
        return {"calls": self.calls, "errors": self.errors, "mean_latency_ms": mean}


def _fingerprint(config: McpServerConfig, snapshot: Snapshot) -> tuple[Any, ...]:
    names = ([config.env_key] if config.env_key else []) + list(config.env)
    return (config, tuple(snapshot.secrets.get(name) for name in names))


class Upstreams:
    def __init__(self, live: LiveConfig, launcher: Launcher | None = None) -> None:
        self.live = live
        #: Root mode: the supervisor starts stdio programs under their own uid.
        self.launcher = launcher
        #: Set when what a server serves may have changed: a pin, its listing, its session.
        self.changed = asyncio.Event()
        self.connections: dict[str, Connection] = {}
        self._fingerprints: dict[str, tuple[Any, ...]] = {}
        self._seen: Snapshot | None = None
        self.figures: dict[tuple[str, str], ToolFigures] = {}
        self._lock = asyncio.Lock()

    async def follow(self) -> None:
        """Run as a background task: apply every new snapshot."""
        while True:
            if self.live.snapshot is not self._seen:
                await self.sync()
            await asyncio.sleep(FOLLOW_EVERY_S)

    async def sync(self) -> None:
        async with self._lock:
            snapshot = self.live.snapshot
            self._seen = snapshot
            wanted = snapshot.config.mcp_servers
            for name in sorted(set(self.connections)):
                fingerprint = _fingerprint(wanted[name], snapshot) if name in wanted else None
                if fingerprint != self._fingerprints.get(name):
                    await self.connections.pop(name).stop()
                    self._fingerprints.pop(name, None)
                    logger.info("upstream MCP server %s closed (its block changed)", name)
            for name, config in wanted.items():
                if name in self.connections:
                    continue
                if config.auto_approve:
                    logger.warning(
                        "upstream MCP server %s: auto_approve is on (development only): every"
                        " tool definition it lists is approved as seen, and only while the"
                        " gateway is in open mode on loopback",
                        name,
                    )
                # imported here, once a server is configured: `mcp` loads OpenTelemetry, which
                # the guardian must not load while tracing is off
                from guardian.upstream.connection import Connection

                connection = Connection(
                    config, snapshot.secrets, self.live.redactor, self.launcher, self.changed.set
                )
                self.connections[name] = connection
                self._fingerprints[name] = _fingerprint(config, snapshot)
                connection.start()

    def connection(self, name: str) -> Connection | None:
        return self.connections.get(name)

    def count(self, server: str, tool: str, latency_ms: float, failed: bool) -> None:
        figures = self.figures.setdefault((server, tool), ToolFigures())
        figures.calls += 1
        figures.errors += int(failed)
        figures.total_ms += latency_ms

    def tool_figures(self, server: str) -> dict[str, dict[str, Any]]:
        return {
            tool: figures.as_dict()
            for (name, tool), figures in sorted(self.figures.items())
            if name == server
        }

    async def close(self) -> None:
        for connection in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await connection.stop()
        self.connections.clear()
