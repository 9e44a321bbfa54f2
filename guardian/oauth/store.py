"""The OAuth tables (migration 6 in `guardian/storage/schema.py`), on both backends.

Single-use is enforced by the database, not by a read then a write: a code or a refresh
token is spent with one `UPDATE ... WHERE used_at IS NULL RETURNING`, so two racing requests
cannot both win, and the loser learns it was a replay.
"""

from __future__ import annotations

import json
import time
from typing import Any

from guardian.storage import Storage
from guardian.storage.base import Row


class OAuthStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _q(self, sql: str) -> str:
        return self.storage.q(sql)

    # clients ---------------------------------------------------------------------------------
    async def put_client(
        self,
        client_id: str,
        kind: str,
        name: str,
        redirect_uris: list[str],
        metadata: dict[str, Any],
    ) -> None:
        """Insert, or refresh a metadata-document client (a revoked one stays revoked)."""
        now = time.time()
        await self.storage.execute(
            self._q(
                "INSERT INTO {s}oauth_clients (client_id, kind, name, redirect_uris, metadata,"
                " created_at, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (client_id) DO UPDATE SET name = excluded.name,"
                " redirect_uris = excluded.redirect_uris, metadata = excluded.metadata,"
                " fetched_at = excluded.fetched_at"
            ),
            client_id,
            kind,
            name,
            json.dumps(redirect_uris),
            json.dumps(metadata),
            now,
            now,
            idempotent=True,
        )

    async def get_client(self, client_id: str) -> Row | None:
        row = await self.storage.fetchrow(
            self._q("SELECT * FROM {s}oauth_clients WHERE client_id = ?"), client_id
        )
        if row is not None:
            row["redirect_uris"] = json.loads(row["redirect_uris"])
        return row

    async def list_clients(self) -> list[Row]:
        return await self.storage.fetch(
            self._q(
                "SELECT c.client_id, c.kind, c.name, c.created_at, c.fetched_at, c.revoked_at,"
                " (SELECT COUNT(*) FROM {s}oauth_tokens t WHERE t.client_id = c.client_id"
                " AND t.revoked_at IS NULL AND t.expires_at > ?) AS live_tokens"
                " FROM {s}oauth_clients c ORDER BY c.created_at"
            ),
            time.time(),
        )

    async def revoke_client(self, client_id: str) -> int:
        now = time.time()
        async with self.storage.transaction() as tx:
            changed = await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_clients SET revoked_at = ? WHERE client_id = ?"
                    " AND revoked_at IS NULL"
                ),
                now,
                client_id,
            )
            await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE client_id = ?"
                    " AND revoked_at IS NULL"
                ),
                now,
                client_id,
            )
            await tx.execute(tx.q("DELETE FROM {s}oauth_grants WHERE client_id = ?"), client_id)
        return changed

    async def count_registered(self) -> int:
        """Registered (RFC 7591) clients not revoked: what the registration cap counts."""
        row = await self.storage.fetchrow(
            self._q(
                "SELECT COUNT(*) AS n FROM {s}oauth_clients WHERE kind = 'registered'"
                " AND revoked_at IS NULL"
            )
        )
        return int(row["n"]) if row else 0

    async def expire_unused(self, registered_before: float) -> int:
        """Delete registered clients older than `registered_before` that never got an
        authorization code (no sign-in ever completed for them)."""
        return await self.storage.execute(
            self._q(
                "DELETE FROM {s}oauth_clients WHERE kind = 'registered' AND created_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM {s}oauth_codes c"
                " WHERE c.client_id = {s}oauth_clients.client_id)"
            ),
            registered_before,
            idempotent=True,
        )

    # consents --------------------------------------------------------------------------------
    async def get_grant(self, user_id: str, client_id: str) -> Row | None:
        return await self.storage.fetchrow(
            self._q("SELECT * FROM {s}oauth_grants WHERE user_id = ? AND client_id = ?"),
            user_id,
            client_id,
        )

    async def put_grant(self, user_id: str, user: str, client_id: str, scope: str) -> None:
        """A consent, by the user's id (the name is kept for display)."""
        now = time.time()
        await self.storage.execute(
            self._q(
                "INSERT INTO {s}oauth_grants (user_id, user_name, client_id, scope, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id)"
                " DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at"
            ),
            user_id,
            user,
            client_id,
            scope,
            now,
            now,
            idempotent=True,
        )

    async def list_grants(self, user: str | None) -> list[Row]:
        return await self.storage.fetch(
            self._q(
                "SELECT g.user_name, g.client_id, g.scope, g.created_at, g.updated_at,"
                " (SELECT COUNT(*) FROM {s}oauth_tokens t WHERE t.client_id = g.client_id"
                " AND t.user_id = g.user_id AND t.revoked_at IS NULL AND t.expires_at > ?)"
                " AS live_tokens FROM {s}oauth_grants g WHERE (? = '' OR g.user_name = ?)"
                " ORDER BY g.user_name, g.client_id"
            ),
            time.time(),
            user or "",
            user or "",
        )

    async def list_user_grants(self, user_id: str) -> list[Row]:
        """One user's consents (by id only), with each client's name and kind, when a token
        was last issued under it (sign-in or refresh) and how many are live."""
        return await self.storage.fetch(
            self._q(
                "SELECT g.client_id, g.scope, g.created_at, g.updated_at,"
                " c.name AS client_name, c.kind AS client_kind,"
                " (SELECT MAX(t.created_at) FROM {s}oauth_tokens t"
                " WHERE t.client_id = g.client_id AND t.user_id = g.user_id) AS last_token_at,"
                " (SELECT COUNT(*) FROM {s}oauth_tokens t WHERE t.client_id = g.client_id"
                " AND t.user_id = g.user_id AND t.revoked_at IS NULL AND t.expires_at > ?)"
                " AS live_tokens"
                " FROM {s}oauth_grants g LEFT JOIN {s}oauth_clients c"
                " ON c.client_id = g.client_id WHERE g.user_id = ?"
                " ORDER BY g.created_at, g.client_id"
            ),
            time.time(),
            user_id,
        )

    async def revoke_grant(self, user_id: str, client_id: str) -> int:
        """The consent and every token issued under it."""
        async with self.storage.transaction() as tx:
            removed = await tx.execute(
                tx.q("DELETE FROM {s}oauth_grants WHERE user_id = ? AND client_id = ?"),
                user_id,
                client_id,
            )
            await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE user_id = ?"
                    " AND client_id = ? AND revoked_at IS NULL"
                ),
                time.time(),
                user_id,
                client_id,
            )
        return removed

    # consent tickets -----------------------------------------------------------------------
    async def put_ticket(
        self, ticket_hash: str, user: Row, request: dict[str, Any], ttl_s: float
    ) -> None:
        now = time.time()
        await self.storage.execute(
            self._q("DELETE FROM {s}oauth_tickets WHERE expires_at <= ?"), now, idempotent=True
        )
        await self.storage.execute(
            self._q(
                "INSERT INTO {s}oauth_tickets (ticket_hash, user_id, user_name, request,"
                " expires_at) VALUES (?, ?, ?, ?, ?)"
            ),
            ticket_hash,
            user["id"],
            user["name"],
            json.dumps(request),
            now + ttl_s,
        )

    async def take_ticket(self, ticket_hash: str) -> tuple[str, dict[str, Any]] | None:
        """(user id, request) of a live ticket, which is spent by this call; else None."""
        row = await self.storage.fetchrow(
            self._q("DELETE FROM {s}oauth_tickets WHERE ticket_hash = ? RETURNING *"),
            ticket_hash,
        )
        if row is None or row["expires_at"] <= time.time():
            return None
        request: dict[str, Any] = json.loads(row["request"])
        return str(row["user_id"]), request

    # codes -----------------------------------------------------------------------------------
    async def put_code(self, code_hash: str, values: dict[str, Any], ttl_s: float) -> None:
        now = time.time()
        await self.storage.execute(
            self._q(
                "INSERT INTO {s}oauth_codes (code_hash, family, client_id, user_name, user_id,"
                " redirect_uri, scope, resource, challenge, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            code_hash,
            values["family"],
            values["client_id"],
            values["user_name"],
            values["user_id"],
            values["redirect_uri"],
            values["scope"],
            values["resource"],
            values["challenge"],
            now,
            now + ttl_s,
        )

    async def spend_code(self, code_hash: str) -> tuple[Row | None, bool]:
        """(the code's row, whether this call spent it). A row with False is a replay."""
        now = time.time()
        row = await self.storage.fetchrow(
            self._q(
                "UPDATE {s}oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL"
                " RETURNING *"
            ),
            now,
            code_hash,
        )
        if row is not None:
            return row, True
        old = await self.storage.fetchrow(
            self._q("SELECT * FROM {s}oauth_codes WHERE code_hash = ?"), code_hash
        )
        return old, False

    # tokens ----------------------------------------------------------------------------------
    async def put_token(
        self, token_hash: str, kind: str, values: dict[str, Any], ttl_s: float
    ) -> None:
        now = time.time()
        await self.storage.execute(
            self._q(
                "INSERT INTO {s}oauth_tokens (token_hash, kind, family, client_id, user_name,"
                " user_id, scope, resource, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            token_hash,
            kind,
            values["family"],
            values["client_id"],
            values["user_name"],
            values["user_id"],
            values["scope"],
            values["resource"],
            now,
            now + ttl_s,
        )

    async def get_token(self, token_hash: str) -> Row | None:
        return await self.storage.fetchrow(
            self._q("SELECT * FROM {s}oauth_tokens WHERE token_hash = ?"), token_hash
        )

    async def spend_refresh(self, token_hash: str) -> tuple[Row | None, bool]:
        """Like `spend_code`, for a refresh token being rotated."""
        row = await self.storage.fetchrow(
            self._q(
                "UPDATE {s}oauth_tokens SET used_at = ? WHERE token_hash = ? AND kind = 'refresh'"
                " AND used_at IS NULL AND revoked_at IS NULL RETURNING *"
            ),
            time.time(),
            token_hash,
        )
        if row is not None:
            return row, True
        return await self.get_token(token_hash), False

    async def revoke_family(self, family: str) -> int:
        return await self.storage.execute(
            self._q(
                "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL"
            ),
            time.time(),
            family,
            idempotent=True,
        )
