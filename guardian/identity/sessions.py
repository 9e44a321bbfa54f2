"""Browser sessions: a login makes one, a logout ends one, a sealed call resolves one.

A session id has 256 bits of entropy and is stored only as its SHA-256 hash; it is bound to
the IP and User-Agent that logged in, ends after `session_idle_s` unused and at
`session_max_s` whatever happens.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from guardian.identity.accounts import Accounts
from guardian.identity.cache import PrincipalCache
from guardian.identity.principal import Principal, credential_hash
from guardian.storage import Storage

#: A session's last use is written at most this often (each is a database write).
TOUCH_S = 60


class Sessions:
    def __init__(self, storage: Storage, accounts: Accounts, cache: PrincipalCache) -> None:
        self.storage = storage
        self.accounts = accounts
        self.cache = cache

    async def login(self, username: str, password: str, ip: str, user_agent: str) -> dict[str, Any]:
        """A new session for a good user name and password (see `Accounts.authenticate`)."""
        user = await self.accounts.authenticate(username, password, ip)
        session = secrets.token_urlsafe(32)
        expires = time.time() + self.accounts.limits.session_max_s
        await self.storage.create_session(
            credential_hash(session), username, ip, user_agent, expires, user["id"]
        )
        await self.storage.add_audit(username, "login", "ok", ip, user_id=user["id"])
        return {"session": session, "principal": username, "expires_at": expires}

    async def logout(self, credential: str, ip: str) -> bool:
        key = credential_hash(credential)
        session = await self.storage.get_session(key)
        removed = await self.storage.delete_session(key)
        if removed and session is not None:
            await self.storage.add_audit(session["user_name"], "logout", "ok", ip)
        self.cache.forget()
        return removed

    async def resolve(self, key: str, caller: Mapping[str, Any]) -> Principal | None:
        """The principal of the session whose id hashes to `key`, or None."""
        session = await self.storage.get_session(key)
        if session is None:
            return None
        now = time.time()
        if session["ip"] != caller.get("ip") or session["user_agent"] != caller.get("user_agent"):
            await self.storage.add_audit(
                session["user_name"],
                "session",
                "refused",
                str(caller.get("ip", "")),
                "IP or User-Agent changed",
            )
            return None
        if (
            session["expires_at"] <= now
            or session["last_seen_at"] + self.accounts.limits.session_idle_s <= now
        ):
            await self.storage.delete_session(key)
            return None
        user = await self.accounts.active_user(session["user_id"])
        if user is None:
            return None
        if now - session["last_seen_at"] > TOUCH_S:
            await self.storage.touch_session(key)
        return self.accounts.principal_of(user, credential=f"session:{key[:16]}")

    async def revoke(self, user: str | None, id_prefix: str | None) -> int:
        """The operator ends a user's sessions, or one session by its shown id."""
        revoked = await self.storage.revoke_sessions(user, id_prefix)
        self.cache.forget()
        return revoked
