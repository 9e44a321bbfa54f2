"""The guardian's secret store: provider keys kept in the guardian database, encrypted.

Each value is sealed with AES-256-GCM under the master key, with a fresh 96-bit nonce per
write and the secret's name and version as associated data, so a ciphertext moved to another
name or version no longer opens. The master key (32 bytes, base64) comes from
`$CREDENTIALS_DIRECTORY/master_key`, the guardian's `SEALGATE_MASTER_KEY` (its environment,
then its env file, `HUB_ENV_FILE`, default `.env`), or the file that `[HUB] master_key_file`
names; never from `.pyfun` or the database, never to the sandbox.

Without a master key the store is off and says why; with the wrong one it refuses to read or
write (a key-check entry tells) and nothing is overwritten. Decrypted values live only in this
process's memory: never logged, never sent over RPC, never written to a file.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from guardian.secrets import read_env_file
from guardian.storage import Storage

logger = logging.getLogger("sealgate.guardian.secretstore")

KEY_CHECK = "__sealgate_key_check__"
_KEY_CHECK_PLAINTEXT = b"sealgate secret store key check"
NONCE_BYTES = 12


class SecretStoreError(Exception):
    """The store cannot do this (disabled, wrong key, unknown name); the message says why."""


def _aad(name: str, version: int) -> bytes:
    return f"sealgate-secret\0{name}\0{version}".encode()


def seal(key: bytes, name: str, version: int, value: bytes) -> tuple[str, str]:
    """(nonce, ciphertext), both base64."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value, _aad(name, version))
    return base64.b64encode(nonce).decode(), base64.b64encode(sealed).decode()


def unseal(key: bytes, name: str, version: int, nonce: str, ciphertext: str) -> bytes:
    """The plaintext; raises `InvalidTag` for a wrong key, a moved or a tampered entry."""
    return AESGCM(key).decrypt(
        base64.b64decode(nonce), base64.b64decode(ciphertext), _aad(name, version)
    )


def parse_master_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretStoreError("the master key is not base64") from None
    if len(key) != 32:
        raise SecretStoreError(f"the master key must be 32 bytes (base64), not {len(key)}")
    return key


def find_master_key(environ: Mapping[str, str], key_file: str) -> tuple[bytes | None, str]:
    """(key, where it came from) or (None, why there is none)."""
    sources: list[tuple[str, str | None]] = []
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / "master_key").is_file():
        sources.append(("credential master_key", (Path(credentials) / "master_key").read_text()))
    if environ.get("SEALGATE_MASTER_KEY"):
        sources.append(("SEALGATE_MASTER_KEY", environ["SEALGATE_MASTER_KEY"]))
    env_file = environ.get("HUB_ENV_FILE", ".env")
    from_file = read_env_file(Path(env_file)).get("SEALGATE_MASTER_KEY") if env_file else None
    if from_file:
        sources.append((f"SEALGATE_MASTER_KEY in the env file {env_file}", from_file))
    if key_file:
        try:
            sources.append((f"key file {key_file}", Path(key_file).read_text()))
        except OSError as exc:
            return None, f"the master key file {key_file} cannot be read ({exc.strerror})"
    if not sources:
        return None, (
            "no master key (set SEALGATE_MASTER_KEY in the environment or the env file,"
            " a master_key credential, or [HUB] master_key_file)"
        )
    origin, text = sources[0]
    try:
        return parse_master_key(text or ""), origin
    except SecretStoreError as exc:
        return None, f"{origin}: {exc}"


@dataclass(frozen=True, slots=True)
class StoredSecret:
    value: str
    version: int


class SecretStore:
    def __init__(self, storage: Storage, key: bytes | None, why_disabled: str = "") -> None:
        self.storage = storage
        self.key = key
        self.why_disabled = why_disabled
        self.values: dict[str, StoredSecret] = {}
        self.generation = ""
        self._used: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def _require_key(self) -> bytes:
        if self.key is None:
            raise SecretStoreError(f"the secret store is off: {self.why_disabled}")
        return self.key

    async def start(self) -> None:
        if self.key is None:
            logger.warning(
                "secret store disabled: %s; env and credential keys still work", self.why_disabled
            )
            return
        check = await self.storage.get_secret_versions(KEY_CHECK)
        if not check:
            nonce, sealed = seal(self.key, KEY_CHECK, 1, _KEY_CHECK_PLAINTEXT)
            await self.storage.add_secret_version(KEY_CHECK, 1, nonce, sealed)
        elif not self._opens(check[-1]):
            self.why_disabled = (
                "the master key does not open this secret store (wrong key?);"
                " nothing was read or changed"
            )
            self.key = None
            logger.error("secret store disabled: %s", self.why_disabled)
            return
        await self.reload()

    def _opens(self, row: Mapping[str, Any]) -> bool:
        try:
            unseal(
                self._require_key(), row["name"], row["version"], row["nonce"], row["ciphertext"]
            )
        except (InvalidTag, ValueError, binascii.Error):
            return False
        return True

    async def changed(self) -> bool:
        """Whether another replica (or this one) changed the store since the last reload."""
        if self.key is None:
            return False
        return await self.storage.secrets_generation() != self.generation

    async def reload(self) -> None:
        """Decrypt the current version of every live secret into memory."""
        key = self._require_key()
        generation = await self.storage.secrets_generation()
        values: dict[str, StoredSecret] = {}
        for row in await self.storage.current_secrets():
            if row["name"] == KEY_CHECK:
                continue
            try:
                plain = unseal(key, row["name"], row["version"], row["nonce"], row["ciphertext"])
            except (InvalidTag, ValueError, binascii.Error):
                logger.error(
                    "secret %s version %d does not decrypt (tampered or moved); skipped",
                    row["name"],
                    row["version"],
                )
                continue
            values[row["name"]] = StoredSecret(plain.decode(), row["version"])
        self.values = values
        self.generation = generation

    async def set(self, name: str, value: str) -> int:
        key = self._require_key()
        if name == KEY_CHECK or not name or len(name) > 128:
            raise SecretStoreError("a secret name is 1-128 characters")
        version = await self.storage.next_secret_version(name)
        nonce, sealed = seal(key, name, version, value.encode())
        await self.storage.add_secret_version(name, version, nonce, sealed)
        await self.reload()
        return version

    async def delete(self, name: str) -> None:
        self._require_key()
        if not await self.storage.delete_secret(name):
            raise SecretStoreError(f"no secret named {name}")
        await self.reload()

    async def rekey(self, new_key: bytes) -> int:
        """Re-encrypt every version under `new_key` in one transaction; returns the count."""
        old = self._require_key()
        rows = await self.storage.all_secret_versions()
        resealed = []
        for row in rows:
            try:
                plain = unseal(old, row["name"], row["version"], row["nonce"], row["ciphertext"])
            except (InvalidTag, ValueError, binascii.Error):
                raise SecretStoreError(
                    f"{row['name']} version {row['version']} does not decrypt; rekey refused,"
                    " nothing changed"
                ) from None
            nonce, sealed = seal(new_key, row["name"], row["version"], plain)
            resealed.append((row["name"], row["version"], nonce, sealed))
        await self.storage.replace_secret_ciphertexts(resealed)
        self.key = new_key
        await self.reload()
        return len(resealed)

    def listing(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Names, versions and dates; never a value."""
        out = []
        for row in rows:
            if row["name"] == KEY_CHECK:
                continue
            current = self.values.get(row["name"])
            status = (
                "deleted"
                if row["deleted_at"]
                else ("current" if current and current.version == row["version"] else "old")
            )
            out.append(
                {
                    "name": row["name"],
                    "version": row["version"],
                    "created_at": row["created_at"],
                    "last_used_at": row["last_used_at"],
                    "status": status,
                }
            )
        return out

    def mark_used(self, name: str) -> None:
        """Remember that a provider call used this secret; `flush_usage` writes it."""
        if name in self.values:
            self._used[name] = time.time()

    async def flush_usage(self) -> None:
        used, self._used = self._used, {}
        for name, when in used.items():
            current = self.values.get(name)
            if current is not None:
                await self.storage.mark_secret_used(name, current.version, when)
