"""A standalone verifier for SealGate's audit log: checkpoints, inclusion proofs, receipts.

One module, no SealGate imports (only Python and `cryptography`), so an auditor can read it
whole and run it anywhere:

    python tools/audit_verify.py checkpoint CHECKPOINT --key VERIFIER_KEY
    python tools/audit_verify.py proof PROOF.json --key VERIFIER_KEY
    python tools/audit_verify.py consistency CONSISTENCY.json --key VERIFIER_KEY
    python tools/audit_verify.py receipt RECEIPT [--proof PROOF.json] --key VERIFIER_KEY

VERIFIER_KEY is the log's public key as published (`<name>+<key id>+<key>`, the file
`verifier_key` beside the exported checkpoints, or `sealgate-ctl status`), given as text
or as a file holding it. It follows RFC 9162 (leaf = SHA-256(0x00 || data), node =
SHA-256(0x01 || left || right), inclusion and consistency proofs), the C2SP signed-note
and tlog-checkpoint formats (Ed25519) and RFC 8785 JSON for leaves and receipts. Exit
status: 0 verified, 1 not verified (the reason is printed), 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_PREFIX = "\u2014 "


class Failed(Exception):
    """Verification failed; the message says what does not hold."""


# RFC 9162 -------------------------------------------------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size or not proof:
        return False
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# C2SP signed-note and tlog-checkpoint -----------------------------------------------------------
def parse_key(text: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """A verifier key `<name>+<hex key id>+<base64(0x01 || key)>`, checked against its id."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise Failed("the verifier key is not <name>+<key id>+<key>")
    name, ident_hex, encoded = parts
    try:
        raw, ident = base64.b64decode(encoded, validate=True), bytes.fromhex(ident_hex)
    except (binascii.Error, ValueError):
        raise Failed("the verifier key's id or key is not hex and base64") from None
    if len(raw) != 33 or raw[0] != 1 or len(ident) != 4:
        raise Failed("the verifier key is not an Ed25519 key")
    if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] != ident:
        raise Failed("the verifier key's id does not match its name and key")
    return name, ident, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note: str, vkey: str) -> str:
    """The text of a signed note carrying a valid signature by `vkey`."""
    name, ident, public = parse_key(vkey)
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise Failed("not a signed note (text, a blank line, signature lines)")
    text = note[: cut + 1]
    for line in note[cut + 2 : -1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX) or line.count(" ") != 2:
            raise Failed("a signature line is not '\u2014 <name> <signature>'")
        who, encoded = line[len(SIGNATURE_PREFIX) :].split(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise Failed("a signature is not base64") from None
        if who != name or blob[:4] != ident:
            continue
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise Failed(f"the signature of {name} does not verify: the note was changed") from None
        return text
    raise Failed(f"the note carries no signature by {name}")


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a checkpoint signed by `vkey`; its origin is the key's name."""
    lines = open_note(note, vkey).split("\n")
    if len(lines) < 4 or not lines[1].isdigit():
        raise Failed("the note is not a checkpoint (origin, size, root)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise Failed("the checkpoint's root is not base64") from None
    if len(root) != 32:
        raise Failed("the checkpoint's root is not 32 bytes")
    if lines[0] != vkey.split("+", 1)[0]:
        raise Failed(f"the checkpoint is of another log ({lines[0]})")
    return lines[0], int(lines[1]), root


# RFC 8785 (enough for receipts: strings, integers, floats, booleans, null, objects, lists) ----
def _number(value: float) -> str:
    """ECMAScript's shortest form of a double, as RFC 8785 requires."""
    if value != value or value in (float("inf"), float("-inf")):
        raise Failed("a receipt holds a number JSON cannot")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in parts.digits)
    k, n = len(digits), len(digits) + int(parts.exponent)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if n >= 1 else '-'}{abs(n - 1)}"
    return ("-" if value < 0 else "") + text


def canonical(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be", "surrogatepass"))
        return (
            "{"
            + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(v) for k, v in items)
            + "}"
        )
    raise Failed(f"{type(value).__name__} is not a JSON value")


# the checks -------------------------------------------------------------------------------------
def check_checkpoint(note: str, vkey: str) -> str:
    origin, size, root = open_checkpoint(note, vkey)
    return f"ok: checkpoint of {origin}, {size} leaves, root {base64.b64encode(root).decode()}"


def check_proof(proof: dict[str, Any], vkey: str) -> str:
    """The leaf is at its index in the tree the checkpoint signed."""
    origin, size, root = open_checkpoint(str(proof["checkpoint"]), vkey)
    index, leaf = int(proof["index"]), str(proof["leaf"])
    if int(proof["size"]) != size:
        raise Failed("the proof is for another tree size than its checkpoint")
    try:
        record = json.loads(leaf)
    except ValueError:
        raise Failed("the leaf is not JSON") from None
    if not isinstance(record, dict) or record.get("index") != index:
        raise Failed("the leaf does not hold the index it is proved at")
    if canonical(record) != leaf:
        raise Failed("the leaf is not in its canonical (RFC 8785) form")
    path = [base64.b64decode(p, validate=True) for p in proof["proof"]]
    if not verify_inclusion(leaf_hash(leaf.encode()), index, size, path, root):
        raise Failed(f"the leaf is not at index {index} of the tree the checkpoint signed")
    return f"ok: leaf {index} is in {origin}'s signed tree of {size} leaves"


def check_consistency(proof: dict[str, Any], vkey: str) -> str:
    """The newer checkpoint's tree extends the older one's: nothing it signed was changed."""
    origin, old_size, old_root = open_checkpoint(str(proof["old_checkpoint"]), vkey)
    _origin, new_size, new_root = open_checkpoint(str(proof["checkpoint"]), vkey)
    if int(proof["old_size"]) != old_size or int(proof["size"]) != new_size:
        raise Failed("the proof is for other tree sizes than its checkpoints")
    path = [base64.b64decode(p, validate=True) for p in proof["proof"]]
    if not verify_consistency(old_size, new_size, old_root, new_root, path):
        raise Failed(
            f"the tree of {new_size} leaves does not extend the one of {old_size}:"
            " history was rewritten"
        )
    return f"ok: {origin}'s tree of {new_size} leaves extends its tree of {old_size}"


def check_receipt(receipt: str, vkey: str, proof: dict[str, Any] | None) -> str:
    """A receipt is `<base64url(RFC 8785 JSON)>.<base64url(Ed25519 signature)>`, signed by
    the log's key; with a proof, the billed ledger row is in the signed tree and says the
    same tokens and cost."""
    _name, _ident, public = parse_key(vkey)
    try:
        body_b64, signature_b64 = receipt.strip().split(".")
        body = base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4))
        signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
        fields = json.loads(body)
    except (ValueError, binascii.Error):
        raise Failed("not a receipt (<base64url body>.<base64url signature>)") from None
    try:
        public.verify(signature, b"sealgate-receipt\n" + body)
    except InvalidSignature:
        raise Failed("the receipt's signature does not verify: it was changed") from None
    if not isinstance(fields, dict) or canonical(fields).encode() != body:
        raise Failed("the receipt's body is not canonical JSON")
    said = f"ok: receipt {fields.get('id')} signed by the log's key"
    if proof is None:
        return said
    check_proof(proof, vkey)
    leaf = json.loads(str(proof["leaf"]))
    if leaf.get("kind") != "usage" or leaf.get("key") != fields.get("id"):
        raise Failed("the proof is of another leaf than this receipt's ledger row")
    for name in ("input_tokens", "output_tokens", "cost_usd", "model", "provider", "user_id"):
        if name in fields and canonical(leaf.get(name)) != canonical(fields[name]):
            raise Failed(f"the ledger row's {name} differs from the receipt's")
    return said + f", and its ledger row is leaf {leaf['index']} of the signed tree"


def _key(text: str) -> str:
    path = Path(text)
    if "+" not in text and path.exists():
        return path.read_text(encoding="utf-8").strip()
    return text.strip()


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="audit_verify", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="what", required=True)
    for what, help_text in (
        ("checkpoint", "a signed checkpoint note"),
        ("proof", "an inclusion proof (sealgate-ctl audit prove --json)"),
        ("consistency", "a consistency proof (sealgate-ctl audit consistency --json)"),
        ("receipt", "a receipt (the SealGate-Receipt header's value)"),
    ):
        command = sub.add_parser(what, help=help_text)
        command.add_argument("file", help="the file, or - for standard input")
        command.add_argument("--key", required=True, help="the verifier key, or a file with it")
        if what == "receipt":
            command.add_argument("--proof", help="its ledger row's inclusion proof (JSON file)")
    args = top.parse_args(argv)
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        vkey = _key(args.key)
        if args.what == "checkpoint":
            print(check_checkpoint(text, vkey))
        elif args.what == "proof":
            print(check_proof(json.loads(text), vkey))
        elif args.what == "consistency":
            print(check_consistency(json.loads(text), vkey))
        else:
            proof = json.loads(Path(args.proof).read_text("utf-8")) if args.proof else None
            print(check_receipt(text, vkey, proof))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (Failed, ValueError, KeyError, TypeError) as exc:
        print(f"FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
