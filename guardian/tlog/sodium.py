"""Ed25519 signing through the system's libsodium, for the receipt on every sealed answer.

Why by hand: a receipt is signed on the answer's path, and libsodium signs in about half
the time OpenSSL takes through `cryptography` (bench/RESULTS.md). PyNaCl
is the library that binds it, but the lock files install every package by hash for every
platform, and PyNaCl is a compiled wheel per platform; Debian's `libsodium23` is one shared
library, so two of its functions are bound here with ctypes. Ed25519 (RFC 8032) is
deterministic: for one key and message every implementation gives the same 64 bytes, so
`signer` signs a probe both ways and uses libsodium only when they agree. Where the library
is missing or disagrees, `cryptography` signs (`SigningKey.sign`), and `status` says which.

`Signer.sign_ahead` is for the receipts on answers: most of an Ed25519 signature is one
multiplication of the base point by the nonce (`R = r*B`, about 22 us here), and RFC 8032
derives the nonce from the message, so it cannot start before the provider's reply is in.
Verification never asks how the nonce was made (RFC 8032 5.1.7): any secret, uniformly
random and never reused `r` gives a valid signature, as in Schnorr's original scheme and in
the hedged EdDSA of draft-irtf-cfrg-det-sigs-with-noise. So `make_nonce` draws `r` from
`os.urandom` and works out `R` while no answer waits (the router schedules it after an
answer), and `sign_ahead` is then only SHA-512 and two scalar operations: `S = r + H(R || A
|| M) * a mod L`, by libsodium's constant-time scalar functions. Each nonce is taken from
the pool once (`list.pop`, under the GIL), a forked child forgets the parent's pool, and a
nonce older than a second is not used (a restored memory snapshot), so no `r` ever signs
two messages (which would give away the key). The same probe check
applies: a `sign_ahead` signature that `cryptography` does not verify turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import time
import weakref

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

SIGNATURE_BYTES = 64
SCALAR_BYTES = 32
_PROBE = b"sealgate: libsodium and OpenSSL must agree on this signature\n"
#: Nonces kept ready: one is made after each answer, so a few cover a burst of answers
#: finished in one turn of the loop; beyond them `sign_ahead` signs as `sign` does.
NONCES_READY = 16
#: A ready nonce older than this (wall clock) is not used: a memory snapshot of a running
#: guardian (a VM's or CRIU's) restored twice would otherwise sign with the same nonces in
#: both copies, and two signatures with one nonce give the key away (docs/AUDIT.md).
NONCE_MAX_AGE_S = 1.0


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


@functools.cache
def _scalars() -> bool:
    """Whether libsodium has the scalar functions `sign_ahead` needs (1.0.16 and later)."""
    library = _library()
    if library is None:
        return False
    try:
        reduce = library.crypto_core_ed25519_scalar_reduce
        multiply = library.crypto_core_ed25519_scalar_mul
        add = library.crypto_core_ed25519_scalar_add
        base = library.crypto_scalarmult_ed25519_base_noclamp
    except AttributeError:
        return False
    # void crypto_core_ed25519_scalar_reduce(r[32], const s[64])
    reduce.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    reduce.restype = None
    # void crypto_core_ed25519_scalar_{mul,add}(z[32], const x[32], const y[32])
    for function in (multiply, add):
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
        function.restype = None
    # int crypto_scalarmult_ed25519_base_noclamp(q[32], const n[32]): -1 for n = 0
    base.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    base.restype = ctypes.c_int
    return True


class Signer:
    """libsodium's Ed25519 for one key: `sign` as RFC 8032 has it, `sign_ahead` with a
    nonce made before the message was known (this module's docstring)."""

    def __init__(self, library: ctypes.CDLL, public: bytes, secret: bytes) -> None:
        self._library = library
        self._public = public
        self._secret = secret  # seed || public key, as libsodium keeps it
        self._scalar = b""  # the secret scalar a, mod L: set by `_enable_ahead`
        #: (r, R = r*B, made at time.time()), each used once
        self._nonces: list[tuple[bytes, bytes, float]] = []

    def sign(self, message: bytes) -> bytes:
        signature = ctypes.create_string_buffer(SIGNATURE_BYTES)
        answer = self._library.crypto_sign_detached(
            signature, None, message, len(message), self._secret
        )
        if answer != 0:
            raise RuntimeError("libsodium could not sign")  # documented never to happen
        return signature.raw

    @property
    def ahead(self) -> bool:
        return bool(self._scalar)

    def make_nonce(self) -> None:
        """One more nonce ready for `sign_ahead` (about 22 us), up to `NONCES_READY`."""
        if not self._scalar or len(self._nonces) >= NONCES_READY:
            return
        nonce = ctypes.create_string_buffer(SCALAR_BYTES)
        point = ctypes.create_string_buffer(SCALAR_BYTES)
        while True:  # r uniform mod L (64 random bytes reduced); r = 0 has no point
            self._library.crypto_core_ed25519_scalar_reduce(nonce, os.urandom(64))
            if self._library.crypto_scalarmult_ed25519_base_noclamp(point, nonce) == 0:
                break
        self._nonces.append((nonce.raw, point.raw, time.time()))

    def sign_ahead(self, message: bytes) -> bytes:
        """An Ed25519 signature of `message` with a nonce made ahead: `R || S` with
        `S = r + SHA-512(R || A || message) * a mod L`; as `sign` when none is ready."""
        try:
            nonce, point, made = self._nonces.pop()
        except IndexError:
            return self.sign(message)
        if not 0 <= time.time() - made <= NONCE_MAX_AGE_S:
            self._nonces.clear()  # the older ones below it too
            return self.sign(message)
        library = self._library
        challenge = ctypes.create_string_buffer(SCALAR_BYTES)
        library.crypto_core_ed25519_scalar_reduce(
            challenge, hashlib.sha512(point + self._public + message).digest()
        )
        product = ctypes.create_string_buffer(SCALAR_BYTES)
        library.crypto_core_ed25519_scalar_mul(product, challenge, self._scalar)
        response = ctypes.create_string_buffer(SCALAR_BYTES)
        library.crypto_core_ed25519_scalar_add(response, product, nonce)
        return point + response.raw

    def forget_nonces(self) -> None:
        self._nonces.clear()

    def _enable_ahead(self) -> None:
        """The secret scalar for `sign_ahead`: SHA-512 of the seed, its first half clamped
        (RFC 8032 5.1.5), reduced mod L."""
        half = bytearray(hashlib.sha512(self._secret[:32]).digest()[:32])
        half[0] &= 248
        half[31] &= 127
        half[31] |= 64
        scalar = ctypes.create_string_buffer(SCALAR_BYTES)
        self._library.crypto_core_ed25519_scalar_reduce(scalar, bytes(half) + bytes(32))
        self._scalar = scalar.raw


#: Every signer of this process, so that a forked child forgets their nonces.
_SIGNERS: weakref.WeakSet[Signer] = weakref.WeakSet()


def _forget_all_nonces() -> None:
    for each in _SIGNERS:
        each.forget_nonces()


os.register_at_fork(after_in_child=_forget_all_nonces)


def signer(key: Ed25519PrivateKey) -> Signer | None:
    """libsodium's signer for `key`, or None (no library, or its signature differs from
    `cryptography`'s: then nothing of it is used). `sign_ahead` is on when libsodium has
    the scalar functions and `cryptography` verifies a probe signed that way."""
    library = _library()
    if library is None:
        return None
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = ctypes.create_string_buffer(32)
    secret = ctypes.create_string_buffer(64)
    if library.crypto_sign_seed_keypair(public, secret, seed) != 0:
        return None
    made = Signer(library, public.raw, secret.raw)
    if made.sign(_PROBE) != key.sign(_PROBE):
        return None
    if _scalars():
        made._enable_ahead()
        made.make_nonce()  # for the probe
        if not _verifies(key, made.sign_ahead(_PROBE), _PROBE):
            made = Signer(library, public.raw, secret.raw)  # deterministic only
    _SIGNERS.add(made)
    for _ in range(NONCES_READY // 2):
        made.make_nonce()
    return made


def _verifies(key: Ed25519PrivateKey, signature: bytes, message: bytes) -> bool:
    try:
        key.public_key().verify(signature, message)
    except InvalidSignature:
        return False
    return True
