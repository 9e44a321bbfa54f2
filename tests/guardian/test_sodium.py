"""Receipts are signed through libsodium (guardian/tlog/sodium.py), bound by hand with ctypes:
its signatures must be byte for byte those of `cryptography` for any key and message, the
binding must never take a message's length from its bytes (a NUL inside, a long message),
and without the library, or with one that disagrees, `cryptography` signs. Signatures with
a nonce made ahead (`sign_ahead`) must verify for any key and message, and no nonce may
sign twice (tests/security/test_receipt_nonces.py attacks that)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from guardian.tlog import sodium
from guardian.tlog.signing_key import SigningKey


@pytest.fixture
def no_cached_library() -> Iterator[None]:
    sodium._library.cache_clear()
    yield
    sodium._library.cache_clear()


def test_the_machine_has_libsodium() -> None:
    """tests/setup_machine.sh installs it: without it the fast path would go untested."""
    assert sodium._library() is not None


@settings(max_examples=200, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2048))
def test_libsodium_signs_exactly_as_openssl(seed: bytes, message: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    fast = sodium.signer(key)
    assert fast is not None
    assert fast.sign(message) == key.sign(message)


@settings(max_examples=200, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2048))
def test_a_signature_with_a_nonce_made_ahead_verifies(seed: bytes, message: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    fast = sodium.signer(key)
    assert fast is not None and fast.ahead
    fast.make_nonce()
    signature = fast.sign_ahead(message)
    key.public_key().verify(signature, message)  # raises on a bad signature
    assert signature != key.sign(message)  # a random nonce, not RFC 8032's derived one
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, message + b"!")


def test_the_nonces_made_ahead_are_bounded_and_without_them_it_signs_as_rfc_8032() -> None:
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None
    for _ in range(3 * sodium.NONCES_READY):
        fast.make_nonce()
    assert len(fast._nonces) == sodium.NONCES_READY
    for _ in range(sodium.NONCES_READY):
        assert fast.sign_ahead(b"m") != key.sign(b"m")
    assert fast._nonces == []
    assert fast.sign_ahead(b"m") == key.sign(b"m")  # none ready: the deterministic one


def test_a_message_with_nul_bytes_and_a_long_one_are_signed_whole() -> None:
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None
    for message in (b"a\0b", b"\0" * 64, b"x" * 1_000_000, b""):
        signature = fast.sign(message)
        assert len(signature) == 64 and signature == key.sign(message)
        key.public_key().verify(signature, message)  # raises on a bad signature
        fast.make_nonce()
        key.public_key().verify(fast.sign_ahead(message), message)
    assert fast.sign(b"a\0b") != fast.sign(b"a")  # the bytes after a NUL are signed too


def test_the_signing_key_uses_libsodium_and_says_so() -> None:
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    assert key.engine == "libsodium"
    assert key.sign(b"m") == key.key.sign(b"m")
    key.make_nonce()
    key.key.public_key().verify(key.sign_ahead(b"m"), b"m")


def test_without_libsodium_openssl_signs(
    monkeypatch: pytest.MonkeyPatch, no_cached_library: None
) -> None:
    monkeypatch.setattr(sodium, "NAMES", ())
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    assert key.fast is None and key.engine == "cryptography (OpenSSL)"
    key.key.public_key().verify(key.sign(b"m"), b"m")
    key.make_nonce()
    assert key.sign_ahead(b"m") == key.sign(b"m")


def test_a_library_that_is_not_there_is_not_used(
    monkeypatch: pytest.MonkeyPatch, no_cached_library: None
) -> None:
    monkeypatch.setattr(sodium, "NAMES", ("libnot-there.so.0",))
    assert sodium.signer(Ed25519PrivateKey.generate()) is None


def test_a_library_that_signs_otherwise_is_not_used(
    monkeypatch: pytest.MonkeyPatch, no_cached_library: None
) -> None:
    """The probe signature must agree: a libsodium that signed differently (another
    algorithm, a broken build) would make receipts nobody can verify."""
    library = sodium._library()
    assert library is not None
    real = library.crypto_sign_detached

    def flipped(signature: ctypes.Array[ctypes.c_char], *rest: object) -> int:
        answer = int(real(signature, *rest))
        signature[0] = bytes([signature.raw[0] ^ 1])
        return answer

    monkeypatch.setattr(library, "crypto_sign_detached", flipped)
    assert sodium.signer(Ed25519PrivateKey.generate()) is None


def test_scalar_functions_that_compute_otherwise_turn_signing_ahead_off(
    monkeypatch: pytest.MonkeyPatch, no_cached_library: None
) -> None:
    """A library whose scalar arithmetic is wrong would make receipts nobody can verify:
    the probe signed ahead must verify, else every receipt is signed as RFC 8032 has it."""
    library = sodium._library()
    assert library is not None and sodium._scalars()
    real = library.crypto_core_ed25519_scalar_add

    def off_by_one(z: ctypes.Array[ctypes.c_char], x: bytes, y: bytes) -> None:
        real(z, x, y)
        z[0] = bytes([z.raw[0] ^ 1])

    monkeypatch.setattr(library, "crypto_core_ed25519_scalar_add", off_by_one)
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None and not fast.ahead
    fast.make_nonce()
    assert fast.sign_ahead(b"m") == key.sign(b"m")


def test_a_library_without_the_scalar_functions_signs_as_rfc_8032(
    monkeypatch: pytest.MonkeyPatch, no_cached_library: None
) -> None:
    monkeypatch.setattr(sodium, "_scalars", lambda: False)
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None and not fast.ahead
    fast.make_nonce()
    assert fast._nonces == [] and fast.sign_ahead(b"m") == key.sign(b"m")
