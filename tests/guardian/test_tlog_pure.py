"""The audit log's pure parts: RFC 8785 JSON, RFC 9162 trees and proofs, C2SP notes."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.tlog import canonical, merkle, note

# The C2SP signed-note specification's example key and note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6Tf"
    "Xppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (333333333.3333333, "333333333.3333333"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-2.5e-5, "-0.000025"),
    ],
)
def test_numbers_are_ecmascript_shortest(value: float, text: str) -> None:
    assert canonical.number(value) == text


def test_objects_sort_by_utf16_and_strings_escape_as_json_stringify() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é\n\u0001", "\U0001f600": 2, "\u20ac": 1}
    assert canonical.encode(value) == '{"a":"é\\n\\u0001","b":[1,2.5,null,true],"€":1,"😀":2}'
    assert json.loads(canonical.encode(value)) == value


#: Where UTF-16 and code point order part: characters past U+FFFF (surrogate pairs, which
#: sort below U+E000..U+FFFF in UTF-16) beside the top of the BMP, and some ASCII.
_NAMES = st.text(
    st.sampled_from(["a", "Z", "\u00e9", "\u20ac", "\ue000", "\uffff", "\U00010000", "\U0001f600"]),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_NAMES | st.text(st.characters(max_codepoint=127), max_size=6), st.none()))
def test_members_are_in_utf16_order_whether_the_names_are_ascii_or_not(
    value: dict[str, None],
) -> None:
    """ASCII names take a shorter path (Python's own order): both must give RFC 8785's."""
    names = list(json.loads(canonical.encode(value)))
    assert names == sorted(value, key=lambda name: name.encode("utf-16-be"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "\ud800", {1: 2}, b"x", 2**60])
def test_what_has_no_canonical_form_is_refused(bad: object) -> None:
    with pytest.raises(canonical.NotCanonical):
        canonical.encode(bad)


def test_rfc9162_known_roots() -> None:
    assert merkle.root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle.root([a]) == a
    assert merkle.root([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)


def test_every_inclusion_and_consistency_proof_verifies_and_no_wrong_one_does() -> None:
    for n in range(1, 34):
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(n)]
        top = merkle.root(leaves)
        for i in range(n):
            proof = merkle.inclusion_proof(leaves, i)
            assert merkle.verify_inclusion(leaves[i], i, n, proof, top)
            assert not merkle.verify_inclusion(merkle.leaf_hash(b"x"), i, n, proof, top)
            if n > 1:
                assert not merkle.verify_inclusion(leaves[i], (i + 1) % n, n, proof, top)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(leaves, m)
            old = merkle.root(leaves[:m])
            assert merkle.verify_consistency(m, n, old, top, proof)
            if m < n:
                assert not merkle.verify_consistency(m, n, merkle.leaf_hash(b"x"), top, proof)
                assert not merkle.verify_consistency(m, n, old, merkle.leaf_hash(b"x"), proof)


def test_the_frontier_gives_the_same_root_as_the_whole_tree() -> None:
    frontier: list[bytes] = []
    leaves = []
    for size in range(70):
        leaf = merkle.leaf_hash(str(size).encode())
        frontier = merkle.append(frontier, size, leaf)
        leaves.append(leaf)
        assert merkle.frontier_root(frontier) == merkle.root(leaves)


def test_the_specification_example_note_verifies() -> None:
    assert note.open_note(SPEC_NOTE, SPEC_VKEY) == "This is an example message.\n"
    tampered = SPEC_NOTE.replace("example message", "example massage")
    with pytest.raises(note.NoteError):
        note.open_note(tampered, SPEC_VKEY)


def test_a_signed_checkpoint_round_trips_and_a_changed_one_fails() -> None:
    key = Ed25519PrivateKey.generate()
    vkey = note.verifier_key("sealgate.test/audit", key.public_key())
    root = merkle.leaf_hash(b"r")
    signed = note.sign(
        note.checkpoint_text("sealgate.test/audit", 7, root), vkey.split("+")[0], key
    )
    assert note.open_checkpoint(signed, vkey) == note.Checkpoint("sealgate.test/audit", 7, root)
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_checkpoint(signed.replace("\n7\n", "\n8\n"), vkey)
    other = note.verifier_key("sealgate.test/audit", Ed25519PrivateKey.generate().public_key())
    with pytest.raises(note.NoteError, match="no signature"):
        note.open_checkpoint(signed, other)


def _tool() -> Any:
    """tools/audit_verify.py, loaded by its path as an auditor runs it."""
    path = Path(__file__).resolve().parents[2] / "tools" / "audit_verify.py"
    spec = importlib.util.spec_from_file_location("audit_verify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_standalone_verifier_agrees_with_the_guardian() -> None:
    tool = _tool()
    assert tool.open_note(SPEC_NOTE, SPEC_VKEY) == "This is an example message.\n"
    for value in (1.0, 0.1, 1e21, 1e-7, 5e-324, 123.456, -2.5e-5, 1e16, 0.000123):
        assert tool._number(value) == canonical.number(value)
    for n in range(1, 20):
        leaves = [merkle.leaf_hash(bytes([i])) for i in range(n)]
        top = merkle.root(leaves)
        for i in range(n):
            assert tool.verify_inclusion(leaves[i], i, n, merkle.inclusion_proof(leaves, i), top)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(leaves, m)
            assert tool.verify_consistency(m, n, merkle.root(leaves[:m]), top, proof)
            if m < n:
                assert not tool.verify_consistency(m, n, leaves[0], top, proof) or m == 1


def test_the_standalone_verifier_checks_a_consistency_proof() -> None:
    tool = _tool()
    key = Ed25519PrivateKey.generate()
    vkey = note.verifier_key("sealgate.test/audit", key.public_key())
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(11)]

    def signed(size: int, root: bytes | None = None) -> str:
        top = merkle.root(leaves[:size]) if root is None else root
        text = note.checkpoint_text("sealgate.test/audit", size, top)
        return note.sign(text, "sealgate.test/audit", key)

    proof = {
        "old_checkpoint": signed(6),
        "old_size": 6,
        "checkpoint": signed(11),
        "size": 11,
        "proof": [base64.b64encode(p).decode() for p in merkle.consistency_proof(leaves, 6)],
    }
    assert tool.check_consistency(proof, vkey).startswith("ok: ")
    rewritten = dict(proof, old_checkpoint=signed(6, merkle.leaf_hash(b"other")))
    with pytest.raises(tool.Failed, match="history was rewritten"):
        tool.check_consistency(rewritten, vkey)
