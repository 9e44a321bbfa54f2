"""Approved definitions of upstream MCP tools (`mcp_pins`): read on every listing, so every
guardian sharing the database serves the same tools."""

from __future__ import annotations

import time

from guardian.storage.database import Database, Row


class McpPinRepository(Database):
    async def mcp_pins(self, server: str) -> dict[str, Row]:
        """tool -> {digest, definition, approved_by, approved_at} for one server."""
        rows = await self.fetch(
            self.q(
                "SELECT tool, digest, definition, approved_by, approved_at FROM {s}mcp_pins"
                " WHERE server = ?"
            ),
            server,
        )
        return {str(row["tool"]): row for row in rows}

    async def set_mcp_pins(
        self, server: str, pins: dict[str, tuple[str, str]], approved_by: str
    ) -> None:
        """Replace one server's pins whole: `pins` is tool -> (digest, definition JSON)."""
        now = time.time()
        async with self.transaction() as tx:
            await tx.execute(tx.q("DELETE FROM {s}mcp_pins WHERE server = ?"), server)
            for tool, (digest, definition) in sorted(pins.items()):
                await tx.execute(
                    tx.q(
                        "INSERT INTO {s}mcp_pins (server, tool, digest, definition,"
                        " approved_by, approved_at) VALUES (?, ?, ?, ?, ?, ?)"
                    ),
                    server,
                    tool,
                    digest,
                    definition,
                    approved_by,
                    now,
                )
