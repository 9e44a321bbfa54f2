"""Receipts: a caller's signed statement of what one sealed call was billed.

A receipt is `<base64url(body)>.<base64url(signature)>` (no padding), where the body is the
RFC 8785 JSON of the ledger row's figures (its key is the receipt's id) and the request's
digest, and the signature is Ed25519 by the audit log's key over `sealgate-receipt\\n` and
the body. The body is made from the ledger row alone, so the receipt given with an answer and
the one `GET /v1/receipts/ID` signs later from the stored row have the same body; their
signatures differ (an answer's is made with a random nonce worked out ahead, `SigningKey.
sign_ahead`; a stored row's as RFC 8032 has it) and both verify. The row's leaf in the log
then proves it was recorded.
"""

from __future__ import annotations

import binascii
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
#: receipt always has these members, so they are sorted and escaped once (`_TEMPLATE`).
_MEMBERS = tuple(
    (name, canonical.encode(name) + ":")
    for name in sorted(
        ("v", "id", *_FIGURES, "estimated", "clamped"), key=lambda k: k.encode("utf-16-be")
    )
)


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """base64url without padding (`base64.urlsafe_b64encode`, in one C call fewer)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def sign(key: SigningKey, values: Mapping[str, Any]) -> str:
    """A stored row's receipt (`GET /v1/receipts/ID`), signed as RFC 8032 has it: the
    nonces made ahead are kept for answers."""
    text = canonical.encode_bytes(body(values))
    return f"{_b64(text)}.{_b64(key.sign(CONTEXT + text))}"


#: A receipt body as one format string, its members in RFC 8785 order (`_MEMBERS`).
_TEMPLATE = "{" + ",".join(f"{prefix}%({name})s" for name, prefix in _MEMBERS) + "}"
_INT_LIMIT = 2**53


def _row_body(row: UsageRow) -> bytes:
    """`canonical.encode_bytes(body(row's figures))` for a ledger row, through one format.

    Why by hand: the receipt is made on every answer's path after the provider's reply,
    with the CPU's caches cold, where the general encoder's call per value measured 28 us
    against 6 us hot (bench/receipts.py). Values of another type than the row declares fall
    back to the general encoder, so the bytes are RFC 8785's either way
    (tests/guardian/test_receipt_encoding.py)."""
    cost, tokens_in, tokens_out = row.cost_usd, row.input_tokens, row.output_tokens
    strings = (
        row.key,
        row.model,
        row.outcome,
        row.principal,
        row.provider,
        row.request_digest,
        row.tool,
        row.user_id,
    )
    if not (
        type(tokens_in) is int
        and type(tokens_out) is int
        and -_INT_LIMIT <= tokens_in <= _INT_LIMIT
        and -_INT_LIMIT <= tokens_out <= _INT_LIMIT
        and type(row.ts) is float
        and (cost is None or type(cost) is float)
        and "".join(strings).isascii()  # beyond ASCII, lone surrogates must be refused
    ):
        return canonical.encode_bytes(body(_figures(row)))
    escape = canonical.escape
    text = _TEMPLATE % {
        "clamped": "true" if row.clamped else "false",
        "cost_usd": "null" if cost is None else canonical.number(cost),
        "estimated": "true" if row.estimated else "false",
        "id": escape(row.key),
        "input_tokens": tokens_in,
        "model": escape(row.model),
        "outcome": escape(row.outcome),
        "output_tokens": tokens_out,
        "principal": escape(row.principal),
        "provider": escape(row.provider),
        "request_digest": escape(row.request_digest),
        "tool": escape(row.tool),
        "ts": canonical.number(row.ts),
        "user_id": escape(row.user_id),
        "v": 1,
    }
    return text.encode()


def _figures(row: UsageRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in (*_FIGURES, "key", "estimated", "clamped")}


def sign_row(key: SigningKey, row: UsageRow) -> str:
    """An answer's receipt, signed with a nonce made ahead (`SigningKey.sign_ahead`)."""
    text = _row_body(row)
    return f"{_b64(text)}.{_b64(key.sign_ahead(CONTEXT + text))}"
