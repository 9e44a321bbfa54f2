"""The audit log's pure parts: RFC 8785 JSON, RFC 9162 trees and proofs, C2SP notes."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
