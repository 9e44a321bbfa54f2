"""Ed25519 signing through the system's libsodium, for the receipt on every sealed answer.

Why by hand: a receipt is signed on the answer's path, and libsodium signs in about half
the time OpenSSL takes through `cryptography` (bench/RESULTS.md). PyNaCl
is the library that binds it, but the lock files install every package by hash for every
platform, and PyNaCl is a compiled wheel per platform; Debian's `libsodium23` is one shared
library, so two of its functions are bound here with ctypes. Ed25519 (RFC 8032) is
deterministic: for one key and message every implementation gives the same 64 bytes, so
`signer` signs a probe both ways and uses libsodium only when they agree. Where the library
is missing or disagrees, `cryptography` signs (`SigningKey.sign`), and `status` says which.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

SIGNATURE_BYTES = 64
_PROBE = b"sealgate: libsodium and OpenSSL must agree on this signature\n"

Signer = Callable[[bytes], bytes]


#: The library's names by soname (Debian's libsodium23 is 1.0.18; 1.0.19 and later are .26),
#: opened by dlopen's own search: `ctypes.util.find_library` would run `ldconfig`.
NAMES = ("libsodium.so.23", "libsodium.so.26", "libsodium.so")


def _open() -> ctypes.CDLL | None:
    """PyDLL, not CDLL: a call keeps the GIL. CDLL lets go of it for each call, and taking
    it back after a signature waited on whichever thread (aiosqlite's) had it meanwhile,
    which cost the answer about a millisecond."""
    for name in NAMES:
        try:
            return ctypes.PyDLL(name)
        except OSError:
            continue
    return None


@functools.cache
def _library() -> ctypes.CDLL | None:
    """libsodium, initialised, or None where the system has none."""
    library = _open()
    if library is None:
        return None
    try:
        if library.sodium_init() < 0:
            return None
        sign = library.crypto_sign_detached
        keypair = library.crypto_sign_seed_keypair
    except AttributeError:
        return None
    # int crypto_sign_detached(sig[64], unsigned long long *siglen_p, const m, mlen, sk[64])
    sign.argtypes = [
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_ulonglong,
        ctypes.c_char_p,
    ]
    sign.restype = ctypes.c_int
    # int crypto_sign_seed_keypair(pk[32], sk[64], const seed[32])
    keypair.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    keypair.restype = ctypes.c_int
    return library


def signer(key: Ed25519PrivateKey) -> Signer | None:
    """A function that signs with `key` through libsodium, or None (no library, or its
    signature differs from `cryptography`'s: then nothing of it is used)."""
    library = _library()
    if library is None:
        return None
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = ctypes.create_string_buffer(32)
    secret = ctypes.create_string_buffer(64)  # seed || public key, as libsodium keeps it
    if library.crypto_sign_seed_keypair(public, secret, seed) != 0:
        return None
    sign_detached = library.crypto_sign_detached

    def sign(message: bytes) -> bytes:
        signature = ctypes.create_string_buffer(SIGNATURE_BYTES)
        if sign_detached(signature, None, message, len(message), secret) != 0:
            raise RuntimeError("libsodium could not sign")  # documented never to happen
        return signature.raw

    if sign(_PROBE) != key.sign(_PROBE):
        return None
    return sign
