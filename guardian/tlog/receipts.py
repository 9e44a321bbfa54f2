"""Receipts: a caller's signed statement of what one sealed call was billed.

A receipt is `<base64url(body)>.<base64url(signature)>` (no padding), where the body is the
RFC 8785 JSON of the ledger row's figures (its key is the receipt's id) and the request's
digest, and the signature is Ed25519 by the audit log's key over `sealgate-receipt\\n` and
the body. The body is made from the ledger row alone, so the receipt given with an answer and
the one `GET /v1/receipts/ID` signs later from the stored row are the same bytes (Ed25519 is
deterministic); the row's leaf in the log then proves it was recorded.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from guardian.storage.base import UsageRow
from guardian.tlog import canonical
from guardian.tlog.signing_key import SigningKey

CONTEXT = b"sealgate-receipt\n"
_FIGURES = (
    "ts",
    "principal",
    "user_id",
    "tool",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "outcome",
    "request_digest",
)


def request_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 of the sealed request as the guardian received it, without the caller (its
    credential and address): binds the receipt to the request, never holds its text."""
    request = {k: v for k, v in params.items() if k != "caller"}
    return hashlib.sha256(msgspec.json.encode(request, order="sorted")).hexdigest()


def body(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a receipt says, from a ledger row (a `UsageRow`'s fields or the stored row)."""
    figures = {name: values[name] for name in _FIGURES}
    return {
        "v": 1,
        "id": values["key"],
        **figures,
        "estimated": bool(values["estimated"]),
        "clamped": bool(values["clamped"]),
    }


#: The body's members in RFC 8785 order (by UTF-16 code units) with their encoded names: a
#: receipt always has these members, so they are sorted and escaped once, not per call.
_MEMBERS = tuple(
    (name, canonical.encode(name) + ":")
    for name in sorted(
        ("v", "id", *_FIGURES, "estimated", "clamped"), key=lambda k: k.encode("utf-16-be")
    )
)


_NAMES = frozenset(name for name, _ in _MEMBERS)


def encode_body(receipt: Mapping[str, Any]) -> bytes:
    """`canonical.encode_bytes(receipt)` for a receipt body (`body`), without sorting and
    escaping its member names again: the same bytes (tests/guardian/test_tlog_pure.py)."""
    if receipt.keys() != _NAMES:
        return canonical.encode_bytes(receipt)
    encode = canonical.encode
    return (
        "{" + ",".join([prefix + encode(receipt[name]) for name, prefix in _MEMBERS]) + "}"
    ).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: SigningKey, values: Mapping[str, Any]) -> str:
    text = encode_body(body(values))
    return f"{_b64(text)}.{_b64(key.sign(CONTEXT + text))}"


def sign_row(key: SigningKey, row: UsageRow) -> str:
    values = {name: getattr(row, name) for name in (*_FIGURES, "key", "estimated", "clamped")}
    return sign(key, values)
