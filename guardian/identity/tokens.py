"""API tokens: the operator issues and revokes them, a sealed call resolves one.

A token is `sg_` and 256 bits of entropy, stored only as its SHA-256 hash; its id (`tok_...`)
names it in listings and the audit log.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from guardian.identity.accounts import Accounts
from guardian.identity.cache import PrincipalCache
from guardian.identity.principal import Principal, credential_hash
from guardian.storage import Storage
from protocol.errors import NotFound

TOKEN_PREFIX = "sg_"  # noqa: S105 - a prefix, not a secret


class Tokens:
    def __init__(self, storage: Storage, accounts: Accounts, cache: PrincipalCache) -> None:
        self.storage = storage
        self.accounts = accounts
        self.cache = cache

    async def resolve(self, key: str) -> Principal | None:
        """The principal of the token whose value hashes to `key`, or None."""
        token = await self.storage.find_token(key)
        if token is None or token["revoked_at"] is not None:
            return None
        if token["expires_at"] is not None and token["expires_at"] <= time.time():
            return None
        user = await self.accounts.active_user(token["user_id"])
        if user is None:
            return None
        await self.storage.touch_token(token["id"])
        return self.accounts.principal_of(user, credential=f"token:{token['id']}")

    async def issue(self, user: str, expires_s: float | None, label: str) -> dict[str, Any]:
        row = await self.storage.get_user(user)
        if row is None:
            raise NotFound(f"no user {user!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        expires_at = time.time() + expires_s if expires_s else None
        await self.storage.create_token(
            token_id, user, credential_hash(token), label, expires_at, row["id"]
        )
        await self.storage.add_audit("operator", "tokens.issue", "ok", "", f"{token_id} for {user}")
        return {"token": token, "id": token_id, "user": user, "expires_at": expires_at}

    async def revoke(self, token_or_id: str) -> None:
        by_hash = credential_hash(token_or_id)
        if not await self.storage.revoke_token(token_or_id, by_hash):
            raise NotFound("no active token with that id or value")
        self.cache.forget()
        shown = token_or_id if token_or_id.startswith("tok_") else "(by value)"
        await self.storage.add_audit("operator", "tokens.revoke", "ok", "", shown)
