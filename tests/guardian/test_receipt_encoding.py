"""A ledger row's receipt body is written through one format with its member order worked
out once (`receipts._row_body`): the bytes must be exactly RFC 8785's
(`canonical.encode_bytes`) for every kind of value, and the standalone verifier must accept
what is signed."""

from __future__ import annotations

import dataclasses
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert receipts._row_body(row) == canonical.encode_bytes(body)


def test_a_stored_row_is_signed_through_the_canonical_encoder() -> None:
    other = {"b": 1, "a": [1.5, None]}
    assert canonical.encode_bytes(other) == b'{"a":[1.5,null],"b":1}'
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    stored, answered = receipts.sign(key, _values(ROW)), receipts.sign_row(key, ROW)
    assert stored.split(".")[0] == answered.split(".")[0]  # the same body, signed twice
    for receipt in (stored, answered):
        assert audit_verify.check_receipt(receipt, key.vkey, None).startswith("ok: receipt")


def test_a_lone_surrogate_is_still_refused() -> None:
    row = dataclasses.replace(ROW, principal="\ud800")
    with pytest.raises(canonical.NotCanonical):
        receipts._row_body(row)


@pytest.mark.parametrize("row", ROWS)
def test_the_standalone_verifier_accepts_the_signed_receipt(row: UsageRow) -> None:
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    receipt = receipts.sign_row(key, row)
    assert audit_verify.check_receipt(receipt, key.vkey, None).startswith("ok: receipt")


_ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=12)  # control ones too
_TEXT = st.text(alphabet=st.characters(codec=None), max_size=12)  # lone surrogates included


@settings(max_examples=300, deadline=None)
@given(
    ts=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 2**40)),
    strings=st.one_of(
        st.lists(_ASCII, min_size=8, max_size=8), st.lists(_TEXT, min_size=8, max_size=8)
    ),
    tokens=st.tuples(st.integers(-(2**60), 2**60), st.integers(0, 2**54)),
    cost=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    flags=st.tuples(st.booleans(), st.booleans()),
)
def test_a_row_written_through_the_template_is_the_general_encoders_bytes(
    ts: float,
    strings: list[str],
    tokens: tuple[int, int],
    cost: float | None,
    flags: tuple[bool, bool],
) -> None:
    """`sign_row`'s one-format body against RFC 8785's encoder of the same figures: the same
    bytes, or the same refusal (a lone surrogate, an integer past 2**53)."""
    key, model, outcome, principal, provider, digest, tool, user_id = strings
    row = UsageRow(
        ts=ts,
        principal=principal,
        tool=tool,
        provider=provider,
        model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_usd=cost,
        latency_ms=1.0,
        outcome=outcome,
        fallback_path="[]",
        key=key,
        estimated=flags[0],
        clamped=flags[1],
        user_id=user_id,
        request_digest=digest,
    )
    try:
        expected = canonical.encode_bytes(receipts.body(_values(row)))
    except canonical.NotCanonical:
        with pytest.raises(canonical.NotCanonical):
            receipts._row_body(row)
        return
    assert receipts._row_body(row) == expected
