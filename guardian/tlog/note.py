"""C2SP signed-note and tlog-checkpoint, with Ed25519.

A checkpoint is the note text

    <origin>\n<tree size>\n<base64 root>\n

followed by a blank line and one signature line per key, `— <key name> <base64(key id ||
signature)>`, where the key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 ||
public key) and the signature covers the text with its final newline. A verifier key is
published as `<name>+<hex key id>+<base64(0x01 || public key)>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "


class NoteError(ValueError):
    """A note or checkpoint that does not parse or does not verify; the message says why."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def verifier_key(name: str, key: Ed25519PublicKey) -> str:
    public = public_bytes(key)
    return f"{name}+{key_id(name, public).hex()}+{base64.b64encode(ED25519 + public).decode()}"


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"a key name has no spaces and no '+': {name!r}")


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    _check_name(origin)
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign(text: str, name: str, key: Ed25519PrivateKey) -> str:
    """The signed note: text, a blank line, one signature line."""
    _check_name(name)
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends with one newline and has no blank line")
    signature = key.sign(text.encode())
    ident = key_id(name, public_bytes(key.public_key()))
    return f"{text}\n{SIGNATURE_PREFIX}{name} {base64.b64encode(ident + signature).decode()}\n"


def parse_verifier_key(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<hex key id>+<base64 key>")
    name, ident_hex, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        ident = bytes.fromhex(ident_hex)
    except (binascii.Error, ValueError):
        raise NoteError("the verifier key's id or key is not hex and base64") from None
    if len(raw) != 33 or raw[:1] != ED25519 or len(ident) != 4:
        raise NoteError("the verifier key is not an Ed25519 key")
    if key_id(name, raw[1:]) != ident:
        raise NoteError("the verifier key's id does not match its name and key")
    return name, ident, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note: str, vkey: str) -> str:
    """The note's text, when a signature by the key `vkey` verifies; else NoteError."""
    name, ident, public = parse_verifier_key(vkey)
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("no signature block (a blank line, then signature lines)")
    text, block = note[: cut + 1], note[cut + 2 :]
    if not block.endswith("\n"):
        raise NoteError("the signature block does not end with a newline")
    for line in block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line does not start with an em dash and a space")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise NoteError("a signature line is '— <name> <base64>'")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if fields[0] != name or blob[:4] != ident:
            continue  # another key's signature: ignored, as the spec says
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise NoteError(f"the signature of {name} does not verify") from None
        return text
    raise NoteError(f"the note carries no signature by {name}")


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint is origin, size and root, one per line")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError(f"the tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("the root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root=root)


def open_checkpoint(note: str, vkey: str) -> Checkpoint:
    return parse_checkpoint(open_note(note, vkey))
