"""Users and what lets anyone act as one: API tokens and sessions (hashes only).

A user's id is stable and never reused: tokens, sessions, grants, limits and budgets are
keyed by it, so a new user of an old name inherits nothing.
"""

from __future__ import annotations

import time
import uuid

from guardian.storage.database import Database, Row


def new_user_id() -> str:
    """A user's stable id: never reused, so a new user of an old name inherits nothing."""
    return "u_" + uuid.uuid4().hex


class UserRepository(Database):
    """Users, their API tokens and sessions; deleting a user removes every way to act as them."""

    # users -------------------------------------------------------------------------------------
    async def create_user(self, name: str, password_hash: str | None, role: str) -> str | None:
        """The new user's id; None when the name is taken."""
        user_id = new_user_id()
        changed = await self.execute(
            self.q(
                "INSERT INTO {s}users (id, name, password_hash, role, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING"
            ),
            user_id,
            name,
            password_hash,
            role,
            time.time(),
        )
        return user_id if changed == 1 else None

    async def get_user(self, name: str) -> Row | None:
        return await self.fetchrow(self.q("SELECT * FROM {s}users WHERE name = ?"), name)

    async def get_user_by_id(self, user_id: str) -> Row | None:
        """The user of a stored id; None for '' (a row that belonged to nobody now)."""
        if not user_id:
            return None
        return await self.fetchrow(self.q("SELECT * FROM {s}users WHERE id = ?"), user_id)

    async def list_users(self) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT name, id, role, created_at, failed_logins, locked_until,"
                " locked_by_operator FROM {s}users ORDER BY name"
            )
        )

    async def count_users(self) -> int:
        row = await self.fetchrow(self.q("SELECT COUNT(*) AS n FROM {s}users"))
        return int(row["n"]) if row else 0

    async def set_password(self, name: str, password_hash: str) -> bool:
        return (
            await self.execute(
                self.q("UPDATE {s}users SET password_hash = ? WHERE name = ?"), password_hash, name
            )
            == 1
        )

    async def set_role(self, name: str, role: str) -> bool:
        return (
            await self.execute(self.q("UPDATE {s}users SET role = ? WHERE name = ?"), role, name)
            == 1
        )

    async def set_lock(self, name: str, until: float | None, by_operator: bool) -> bool:
        """Lock until a time (None: unlock, which also clears the failed-login count)."""
        if until is None:
            return (
                await self.execute(
                    self.q(
                        "UPDATE {s}users SET locked_until = NULL, locked_by_operator = 0,"
                        " failed_logins = 0 WHERE name = ?"
                    ),
                    name,
                )
                == 1
            )
        return (
            await self.execute(
                self.q(
                    "UPDATE {s}users SET locked_until = ?, locked_by_operator = ? WHERE name = ?"
                ),
                until,
                1 if by_operator else 0,
                name,
            )
            == 1
        )

    async def count_login_attempt(self, name: str, now: float) -> int | None:
        """Count one login attempt against the user before its password is checked, in one
        atomic statement, so parallel guesses cannot all see the old count. None when the
        user does not exist or is locked (nothing is counted then)."""
        row = await self.fetchrow(
            self.q(
                "UPDATE {s}users SET failed_logins = failed_logins + 1 WHERE name = ?"
                " AND (locked_until IS NULL OR locked_until <= ?) RETURNING failed_logins"
            ),
            name,
            now,
        )
        return int(row["failed_logins"]) if row else None

    async def add_failed_login(self, name: str) -> int:
        row = await self.fetchrow(
            self.q(
                "UPDATE {s}users SET failed_logins = failed_logins + 1 WHERE name = ?"
                " RETURNING failed_logins"
            ),
            name,
        )
        return int(row["failed_logins"]) if row else 0

    async def reset_failed_logins(self, name: str) -> None:
        await self.execute(
            self.q("UPDATE {s}users SET failed_logins = 0 WHERE name = ?"), name, idempotent=True
        )

    async def delete_user(self, name: str) -> bool:
        """The user and everything that let anyone act as them, all or nothing: API tokens,
        sessions, OAuth consents, codes, sign-in tickets and tokens (revoked, kept for the
        record). Rows are found by the user's id and, for rows older than ids, by name."""
        async with self.transaction() as tx:
            user = await tx.fetchrow(tx.q("SELECT id FROM {s}users WHERE name = ?"), name)
            if user is None:
                return False
            user_id = user["id"] or ""
            for table in ("api_tokens", "sessions", "oauth_grants", "oauth_codes", "oauth_tickets"):
                await tx.execute(
                    tx.q(f"DELETE FROM {{s}}{table} WHERE user_id = ? OR user_name = ?"),  # noqa: S608
                    user_id,
                    name,
                )
            await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE (user_id = ? OR user_name = ?)"
                    " AND revoked_at IS NULL"
                ),
                time.time(),
                user_id,
                name,
            )
            return await tx.execute(tx.q("DELETE FROM {s}users WHERE name = ?"), name) == 1

    async def revoke_oauth_of(self, user_id: str) -> int:
        """Every OAuth consent and token of a user (after a new password or role): the
        client must ask the person again."""
        async with self.transaction() as tx:
            await tx.execute(tx.q("DELETE FROM {s}oauth_grants WHERE user_id = ?"), user_id)
            await tx.execute(tx.q("DELETE FROM {s}oauth_tickets WHERE user_id = ?"), user_id)
            return await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE user_id = ?"
                    " AND revoked_at IS NULL"
                ),
                time.time(),
                user_id,
            )

    # tokens ------------------------------------------------------------------------------------
    async def create_token(
        self,
        token_id: str,
        user: str,
        token_hash: str,
        label: str,
        expires_at: float | None,
        user_id: str,
    ) -> None:
        await self.execute(
            self.q(
                "INSERT INTO {s}api_tokens (id, user_name, token_hash, label, created_at,"
                " expires_at, user_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            token_id,
            user,
            token_hash,
            label,
            time.time(),
            expires_at,
            user_id,
        )

    async def find_token(self, token_hash: str) -> Row | None:
        return await self.fetchrow(
            self.q("SELECT * FROM {s}api_tokens WHERE token_hash = ?"), token_hash
        )

    async def touch_token(self, token_id: str) -> None:
        await self.execute(
            self.q("UPDATE {s}api_tokens SET last_used_at = ? WHERE id = ?"),
            time.time(),
            token_id,
            idempotent=True,
        )

    async def list_tokens(self, user: str | None = None) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT id, user_name, label, created_at, expires_at, revoked_at, last_used_at"
                " FROM {s}api_tokens WHERE (? = '' OR user_name = ?) ORDER BY created_at"
            ),
            user or "",
            user or "",
        )

    async def revoke_token(self, token_id: str | None, token_hash: str | None) -> bool:
        return (
            await self.execute(
                self.q(
                    "UPDATE {s}api_tokens SET revoked_at = ? WHERE (id = ? OR token_hash = ?)"
                    " AND revoked_at IS NULL"
                ),
                time.time(),
                token_id or "",
                token_hash or "",
            )
            == 1
        )

    # sessions ----------------------------------------------------------------------------------
    async def create_session(
        self, id_hash: str, user: str, ip: str, user_agent: str, expires_at: float, user_id: str
    ) -> None:
        now = time.time()
        await self.execute(
            self.q(
                "INSERT INTO {s}sessions (id_hash, user_name, ip, user_agent, created_at,"
                " last_seen_at, expires_at, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            id_hash,
            user,
            ip,
            user_agent,
            now,
            now,
            expires_at,
            user_id,
        )

    async def get_session(self, id_hash: str) -> Row | None:
        return await self.fetchrow(self.q("SELECT * FROM {s}sessions WHERE id_hash = ?"), id_hash)

    async def touch_session(self, id_hash: str) -> None:
        await self.execute(
            self.q("UPDATE {s}sessions SET last_seen_at = ? WHERE id_hash = ?"),
            time.time(),
            id_hash,
            idempotent=True,
        )

    async def delete_session(self, id_hash: str) -> bool:
        return await self.execute(self.q("DELETE FROM {s}sessions WHERE id_hash = ?"), id_hash) == 1

    async def list_sessions(self) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT substr(id_hash, 1, 12) AS id, user_name, ip, user_agent, created_at,"
                " last_seen_at, expires_at FROM {s}sessions ORDER BY created_at"
            )
        )

    async def revoke_sessions(self, user: str | None, id_prefix: str | None) -> int:
        if user is not None:
            return await self.execute(self.q("DELETE FROM {s}sessions WHERE user_name = ?"), user)
        return await self.execute(
            self.q("DELETE FROM {s}sessions WHERE substr(id_hash, 1, 12) = ?"), id_prefix or ""
        )
