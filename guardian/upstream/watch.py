"""Tell the sandboxes when the upstream tools served change (`mcp.changed`).

A tool appears when an operator approves it (`mcp approve`, on this guardian or on another
one sharing the database) and disappears when its server changes its definition (its pin then
hides it), stops listing it, or goes away. Every `WATCH_EVERY_S` the guardian compares what
each server serves now (the tools whose definition has the approved digest) with what it
served before, and on any difference notifies every sandbox, which sends MCP
`notifications/tools/list_changed` to its clients. An approval on this guardian, a server's
own `tools/list_changed`, and a session opened or lost wake the watch at once (`changed` of
the pool). Nothing here audits or pins: it only looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from guardian.upstream.service import UpstreamService

logger = logging.getLogger("sealgate.guardian.upstream")

#: How often the served tools are compared (the listing cache is about as old).
WATCH_EVERY_S = 5.0

Served = frozenset[tuple[str, str]]


class ServedWatch:
    def __init__(self, service: UpstreamService, notify: Callable[[list[str]], None]) -> None:
        self.service = service
        #: Called with the names of the servers whose served tools changed.
        self.notify = notify
        self.seen: dict[str, Served] = {}

    async def run(self) -> None:
        """Run as a background task: compare, then wait for an approval or the next round."""
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup: the next round tries again
                logger.exception("the upstream tools served could not be compared")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.service.pool.changed.wait(), WATCH_EVERY_S)
            self.service.pool.changed.clear()

    async def check(self) -> list[str]:
        """The servers whose served tools differ from the last round; notified if any."""
        configured = self.service.pool.live.snapshot.config.mcp_servers
        changed: list[str] = []
        for name in sorted(set(configured) | set(self.seen)):
            config = configured.get(name)
            now = await self.service.served_digests(config) if config else frozenset()
            if now != self.seen.get(name, frozenset()):
                changed.append(name)
            if now:
                self.seen[name] = now
            else:
                self.seen.pop(name, None)
        if changed:
            logger.info("upstream tools served changed: %s", ", ".join(changed))
            self.notify(changed)
        return changed
