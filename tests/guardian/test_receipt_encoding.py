"""A receipt's body is encoded with its member order worked out once (`encode_body`): the
bytes must be exactly RFC 8785's (`canonical.encode_bytes`) for every kind of value, and the
standalone verifier must accept what is signed."""

from __future__ import annotations

import dataclasses
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guardian.storage.base import UsageRow
from guardian.tlog import canonical, receipts
from guardian.tlog.signing_key import SigningKey
from tools import audit_verify

ROW = UsageRow(
    ts=time.time(),
    principal="bench",
    tool="llm_complete",
    provider="fake",
    model="bench-model",
    input_tokens=9,
    output_tokens=5,
    cost_usd=0.000123,
    latency_ms=1.5,
    outcome="ok",
    fallback_path="[]",
    request_digest="0" * 64,
)

ROWS = [
    ROW,
    dataclasses.replace(ROW, cost_usd=None, estimated=True, clamped=True),
    dataclasses.replace(ROW, cost_usd=1e-7, ts=1.0, input_tokens=0),
    dataclasses.replace(ROW, cost_usd=12345678.5, principal='ünï "quoted"\n\u2028', model="m/é"),
    dataclasses.replace(ROW, user_id="u-1", outcome="rate_limited", provider="\x00\x1f"),
]


def _values(row: UsageRow) -> dict[str, object]:
    names = (*receipts._FIGURES, "key", "estimated", "clamped")
    return {name: getattr(row, name) for name in names}


@pytest.mark.parametrize("row", ROWS)
def test_the_body_is_rfc_8785_byte_for_byte(row: UsageRow) -> None:
    body = receipts.body(_values(row))
    assert receipts.encode_body(body) == canonical.encode_bytes(body)


def test_another_map_falls_back_to_the_canonical_encoder() -> None:
    other = {"b": 1, "a": [1.5, None]}
    assert receipts.encode_body(other) == canonical.encode_bytes(other) == b'{"a":[1.5,null],"b":1}'


def test_a_lone_surrogate_is_still_refused() -> None:
    body = receipts.body(_values(dataclasses.replace(ROW, principal="\ud800")))
    with pytest.raises(canonical.NotCanonical):
        receipts.encode_body(body)


@pytest.mark.parametrize("row", ROWS)
def test_the_standalone_verifier_accepts_the_signed_receipt(row: UsageRow) -> None:
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    receipt = receipts.sign_row(key, row)
    assert audit_verify.check_receipt(receipt, key.vkey, None).startswith("ok: receipt")
