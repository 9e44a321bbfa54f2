"""The checkpoint and receipt signing key: Ed25519, made once, kept where secrets are kept.

With the secret store on, the key's seed is the secret `AUDIT_SIGNING_KEY` (shared by every
replica on the database, encrypted under the master key). With the store off, it is a 0600
file in the guardian's data directory, `audit_signing.key`. `status` says which. The public
half is published as a C2SP verifier key (`<name>+<key id>+<key>`), in `status` and beside
every exported checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from guardian.secretstore import SecretStore
from guardian.tlog import note, sodium

STORE_ENTRY = "AUDIT_SIGNING_KEY"
KEY_FILE = "audit_signing.key"


class SigningKeyError(Exception):
    """The key cannot be read or made; the message says why."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: Ed25519PrivateKey
    name: str  # the log's origin, which is also the key's name
    where: str  # for status: the secret store, or the file
    # libsodium's signer for the same key where the system has it (guardian/tlog/sodium.py)
    fast: sodium.Signer | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fast", sodium.signer(self.key))

    @property
    def vkey(self) -> str:
        return note.verifier_key(self.name, self.key.public_key())

    @property
    def engine(self) -> str:
        """For status: which library signs (both give the same bytes)."""
        return "libsodium" if self.fast is not None else "cryptography (OpenSSL)"

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of `message` (RFC 8032's, the same bytes every time), by
        libsodium where it is available."""
        if self.fast is not None:
            return self.fast.sign(message)
        return self.key.sign(message)

    def sign_ahead(self, message: bytes) -> bytes:
        """An Ed25519 signature of `message` with a nonce made ahead, off the answer's path
        (guardian/tlog/sodium.py): any verifier accepts it; signing the same message again
        gives another signature. As `sign` where libsodium cannot."""
        if self.fast is not None:
            return self.fast.sign_ahead(message)
        return self.key.sign(message)

    def make_nonce(self) -> None:
        """One nonce more for `sign_ahead` (a no-op without libsodium)."""
        if self.fast is not None:
            self.fast.make_nonce()


def _seed(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def _from_seed(text: str, where: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise SigningKeyError(f"the audit signing key in {where} is not base64") from None
    if len(raw) != 32:
        raise SigningKeyError(f"the audit signing key in {where} is not 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


async def load_signing_key(store: SecretStore, directory: Path, name: str) -> SigningKey:
    """The key, made on first use: in the secret store when it is on, else in the file."""
    note.checkpoint_text(name, 0, b"\0" * 32)  # the name is a valid key name
    if store.enabled:
        where = f"secret store ({STORE_ENTRY})"
        current = store.values.get(STORE_ENTRY)
        if current is None:
            await store.set(STORE_ENTRY, _seed(Ed25519PrivateKey.generate()))
            current = store.values[STORE_ENTRY]
        return SigningKey(_from_seed(current.value, where), name, where)
    path = directory / KEY_FILE
    where = f"file {path} (0600)"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(f"{path} is readable by others: chmod 600 it") from None
        return SigningKey(_from_seed(path.read_text(), where), name, where)
    except OSError as exc:
        raise SigningKeyError(f"cannot create {path}: {exc.strerror}") from None
    key = Ed25519PrivateKey.generate()
    with os.fdopen(fd, "w") as out:
        out.write(_seed(key) + "\n")
    return SigningKey(key, name, where)
