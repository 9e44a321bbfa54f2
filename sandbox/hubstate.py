"""The sandbox's own SQLite file: `hub_state` (small facts about this sandbox) and
`tool_cache` (deterministic tool results, per credential grant).

Only results of calls made with temperature 0 are cached, keyed by the credential's grant
(see `cache_grant`), tool and every argument, for `[DB_SYNC] tool_cache_ttl_sec` (default
one hour). A cached answer is served without a sealed call, so it costs nothing and is not
metered again; it is served only for a tool the guardian allowed this credential.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiosqlite

from protocol import __version__
from protocol.errors import Forbidden, InvalidParams, Timeout
from protocol.readonly_sql import Policy, check

DEFAULT_TTL_S = 3600.0
HUB_TABLES = ("hub_state", "tool_cache")
QUERY_TIMEOUT_S = 5.0
#: Expired cache entries are deleted at most this often, as new ones are written: the file
#: holds what is within its TTL, not everything ever cached (no background task needed).
PURGE_INTERVAL_S = 60.0
MAX_ROWS = 1000

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS hub_state (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " updated_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tool_cache (key TEXT PRIMARY KEY, principal TEXT NOT NULL,"
    " tool TEXT NOT NULL, result TEXT NOT NULL, created_at REAL NOT NULL,"
    " expires_at REAL NOT NULL)",
)


def cache_key(grant: str, tool: str, arguments: dict[str, Any]) -> str:
    raw = json.dumps([grant, tool, arguments], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def cache_grant(principal: Mapping[str, Any] | None, tool: str) -> str | None:
    """The grant a cached answer of `tool` may be kept and served under, from the guardian's
    `auth.verify` answer for this request's credential; None when nothing may be cached.

    Only when the guardian allowed this tool for this credential (its role narrowed to its
    token's scopes), and keyed by the grant digest (the user's id, the credential, its role
    and scopes), never by the user name alone: a narrower token of the same user, a new user
    of an old name or a changed role never gets an answer cached for another."""
    if principal is None:
        return None
    grant = principal.get("grant")
    tools = principal.get("tools")
    if not isinstance(grant, str) or not grant or not isinstance(tools, list):
        return None
    if "*" not in tools and tool not in tools:
        return None
    return grant


class HubState:
    def __init__(self, path: Path, ttl_s: float = DEFAULT_TTL_S, max_entries: int = 0) -> None:
        self.path = path
        self.ttl_s = ttl_s
        #: `[DB_SYNC] max_cache_entries` (the original's MAX_CACHE_ENTRIES); 0: no cap.
        self.max_entries = max_entries
        self._db: aiosqlite.Connection | None = None
        self._purged_at = time.time()
        self.policy = Policy.of(HUB_TABLES, default_schema="main")

    async def open(self) -> None:
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA:
            await self._db.execute(statement)
        await self._db.execute("DELETE FROM tool_cache WHERE expires_at < ?", (time.time(),))
        await self._db.commit()
        # facts about this sandbox, readable with db_query target "hub"
        await self.set("started_at", str(time.time()))
        await self.set("version", __version__)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def set(self, key: str, value: str) -> None:
        if self._db is None:
            return
        await self._db.execute(
            "INSERT INTO hub_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, value, time.time()),
        )
        await self._db.commit()

    async def cached(self, key: str) -> dict[str, Any] | None:
        if self._db is None:
            return None
        cursor = await self._db.execute(
            "SELECT result FROM tool_cache WHERE key = ? AND expires_at > ?", (key, time.time())
        )
        row = await cursor.fetchone()
        return json.loads(row[0]) if row else None

    async def remember(self, key: str, principal: str, tool: str, result: dict[str, Any]) -> None:
        if self._db is None:
            return
        now = time.time()
        if now - self._purged_at >= PURGE_INTERVAL_S:
            await self._db.execute("DELETE FROM tool_cache WHERE expires_at < ?", (now,))
            self._purged_at = now
        await self._db.execute(
            "INSERT OR REPLACE INTO tool_cache (key, principal, tool, result, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key, principal, tool, json.dumps(result), now, now + self.ttl_s),
        )
        if self.max_entries:  # the oldest answers go first
            await self._db.execute(
                "DELETE FROM tool_cache WHERE key IN (SELECT key FROM tool_cache"
                " ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
                (self.max_entries,),
            )
        await self._db.commit()

    async def query(self, sql: str, max_rows: int | None) -> dict[str, Any]:
        """A read-only SELECT over this file: the guardian's db.query rule first, then
        SQLite's authorizer, since the two grammars differ (nested comments, for one)."""
        check(sql, self.policy)
        cap = min(max_rows or 100, MAX_ROWS)
        return await asyncio.to_thread(self._query, sql, cap)

    def _authorizer(self, denied: list[int]) -> Any:
        """SQLite's own check of what a statement does, as SQLite (not PostgreSQL's grammar,
        which the first check uses) understands it: read the hub tables, call allowlisted
        functions, nothing else (no sqlite_master, no PRAGMA, no ATTACH). Denials are noted
        in `denied`, since SQLite words them in several ways."""

        def authorize(
            action: int, arg1: str | None, arg2: str | None, db: str | None, _: str | None
        ) -> int:
            if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
                return sqlite3.SQLITE_OK
            # `count(*)` reads a table with no database named; ATTACH is denied anyway.
            if action == sqlite3.SQLITE_READ and db in ("main", None) and arg1 in HUB_TABLES:
                return sqlite3.SQLITE_OK
            if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in self.policy.functions:
                return sqlite3.SQLITE_OK
            denied.append(action)
            return sqlite3.SQLITE_DENY

        return authorize

    def _query(self, sql: str, cap: int) -> dict[str, Any]:
        deadline = time.monotonic() + QUERY_TIMEOUT_S
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA query_only = ON")
            connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            denied: list[int] = []
            connection.set_authorizer(self._authorizer(denied))
            try:
                cursor = connection.execute(sql)
                rows = cursor.fetchmany(cap + 1)
            except sqlite3.DatabaseError as exc:
                if time.monotonic() > deadline:
                    raise Timeout(f"the query ran longer than {QUERY_TIMEOUT_S:g} s") from None
                if denied:
                    raise Forbidden(
                        "the hub database refused the query: only hub_state and tool_cache"
                        " may be read, with allowlisted functions"
                    ) from None
                raise InvalidParams(f"the hub database refused the query: {exc}") from None
            columns = [d[0] for d in cursor.description or ()]
        finally:
            connection.close()
        return {
            "columns": columns,
            "rows": [list(r) for r in rows[:cap]],
            "row_count": min(len(rows), cap),
            "truncated": len(rows) > cap,
        }
