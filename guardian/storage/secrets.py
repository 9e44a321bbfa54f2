"""The secret store's rows: ciphertexts only, versioned (the key never reaches the database)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from guardian.storage.database import Database, Row


class SecretRepository(Database):
    """Sealed secret versions; `guardian.secretstore` seals and opens them."""

    # the secret store: ciphertexts only ---------------------------------------------------------
    async def get_secret_versions(self, name: str) -> list[Row]:
        return await self.fetch(
            self.q("SELECT * FROM {s}secrets WHERE name = ? ORDER BY version"), name
        )

    async def next_secret_version(self, name: str) -> int:
        row = await self.fetchrow(
            self.q("SELECT MAX(version) AS v FROM {s}secrets WHERE name = ?"), name
        )
        return int(row["v"]) + 1 if row and row["v"] is not None else 1

    async def add_secret_version(self, name: str, version: int, nonce: str, sealed: str) -> None:
        now = time.time()
        await self.execute(
            self.q(
                "INSERT INTO {s}secrets (name, version, nonce, ciphertext, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            name,
            version,
            nonce,
            sealed,
            now,
            now,
        )

    async def current_secrets(self) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT s.* FROM {s}secrets s WHERE s.deleted_at IS NULL AND s.version ="
                " (SELECT MAX(t.version) FROM {s}secrets t WHERE t.name = s.name)"
            )
        )

    async def all_secret_versions(self) -> list[Row]:
        return await self.fetch(self.q("SELECT * FROM {s}secrets ORDER BY name, version"))

    async def delete_secret(self, name: str) -> bool:
        changed = await self.execute(
            self.q("UPDATE {s}secrets SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL"),
            time.time(),
            name,
        )
        return changed > 0

    async def secrets_generation(self) -> str:
        row = await self.fetchrow(
            self.q(
                "SELECT COUNT(*) AS n, MAX(updated_at) AS u, MAX(deleted_at) AS d FROM {s}secrets"
            )
        )
        return f"{row['n']}:{row['u']}:{row['d']}" if row else ""

    async def replace_secret_ciphertexts(self, rows: Sequence[tuple[str, int, str, str]]) -> None:
        """Re-encrypted entries, all in one transaction (rekey)."""
        now = time.time()
        await self.executemany(
            self.q(
                "UPDATE {s}secrets SET nonce = ?, ciphertext = ?, updated_at = ?"
                " WHERE name = ? AND version = ?"
            ),
            [(nonce, sealed, now, name, version) for name, version, nonce, sealed in rows],
        )

    async def mark_secret_used(self, name: str, version: int, when: float) -> None:
        await self.execute(
            self.q("UPDATE {s}secrets SET last_used_at = ? WHERE name = ? AND version = ?"),
            when,
            name,
            version,
            idempotent=True,
        )
