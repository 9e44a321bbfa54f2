"""Receipts are signed through libsodium (guardian/tlog/sodium.py), bound by hand with ctypes:
its signatures must be byte for byte those of `cryptography` for any key and message, the
binding must never take a message's length from its bytes (a NUL inside, a long message),
and without the library, or with one that disagrees, `cryptography` signs."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest
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
    assert fast(message) == key.sign(message)


def test_a_message_with_nul_bytes_and_a_long_one_are_signed_whole() -> None:
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None
    for message in (b"a\0b", b"\0" * 64, b"x" * 1_000_000, b""):
        signature = fast(message)
        assert len(signature) == 64 and signature == key.sign(message)
        key.public_key().verify(signature, message)  # raises on a bad signature
    assert fast(b"a\0b") != fast(b"a")  # the bytes after a NUL are signed too


def test_the_signing_key_uses_libsodium_and_says_so() -> None:
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    assert key.engine == "libsodium"
    assert key.sign(b"m") == key.key.sign(b"m")


def test_without_libsodium_openssl_signs(
    monkeypatch: pytest.MonkeyPatch, no_cached_library: None
) -> None:
    monkeypatch.setattr(sodium, "NAMES", ())
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "test")
    assert key.fast is None and key.engine == "cryptography (OpenSSL)"
    key.key.public_key().verify(key.sign(b"m"), b"m")


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
