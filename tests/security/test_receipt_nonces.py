"""Receipts signed with nonces made ahead (guardian/tlog/sodium.py) under attack: whoever
collects receipts (a caller, a compromised sandbox asking `receipts.get` again and again)
looks for two signatures that share their `R`. Two messages signed with one nonce give the
signing key away (`_recovered_scalar` below does it, and the first test shows it works), so
no nonce may sign twice: not under concurrent answers on the loop, not from threads, not in
a forked child that inherited the parent's ready nonces.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from guardian.tlog import sodium
from guardian.tlog.signing_key import SigningKey

#: The order of Ed25519's base point (RFC 8032 5.1).
L = 2**252 + 27742317777372353535851937790883648493


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _challenge(point: bytes, public: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(point + public + message).digest(), "little") % L


def _recovered_scalar(
    public: bytes, first: tuple[bytes, bytes], second: tuple[bytes, bytes]
) -> bytes | None:
    """The secret scalar from two signatures (message, signature) that share their nonce:
    S1 - S2 = (k1 - k2) * a mod L. None when they do not share it."""
    (m1, sig1), (m2, sig2) = first, second
    if sig1[:32] != sig2[:32]:
        return None
    k1, k2 = _challenge(sig1[:32], public, m1), _challenge(sig2[:32], public, m2)
    s1, s2 = int.from_bytes(sig1[32:], "little"), int.from_bytes(sig2[32:], "little")
    return ((s1 - s2) * pow(k1 - k2, -1, L) % L).to_bytes(32, "little")


def _gives_the_key(public: bytes, scalar: bytes) -> bool:
    library = sodium._library()
    assert library is not None and sodium._scalars()
    point = ctypes.create_string_buffer(32)
    return library.crypto_scalarmult_ed25519_base_noclamp(point, scalar) == 0 and (
        point.raw == public
    )


def _no_nonce_twice(public: bytes, signed: list[tuple[bytes, bytes]]) -> None:
    by_point: dict[bytes, tuple[bytes, bytes]] = {}
    for message, signature in signed:
        earlier = by_point.setdefault(signature[:32], (message, signature))
        if earlier[0] != message:  # one message signed twice the RFC 8032 way shares R
            scalar = _recovered_scalar(public, earlier, (message, signature))
            raise AssertionError(f"a nonce signed two messages; key recovered: {scalar!r}")


def test_a_nonce_used_twice_would_give_the_key_away() -> None:
    """The attack the other tests guard against works: were one ready nonce taken twice,
    two receipts would yield the signing key."""
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None and fast.ahead
    fast.make_nonce()
    reused = fast._nonces[-1]
    fast._nonces.append(reused)
    first = (b"receipt one", fast.sign_ahead(b"receipt one"))
    second = (b"receipt two", fast.sign_ahead(b"receipt two"))
    scalar = _recovered_scalar(_public(key), first, second)
    assert scalar is not None and _gives_the_key(_public(key), scalar)


def test_answers_finished_together_on_the_loop_never_share_a_nonce() -> None:
    """The router's cadence: each answer's receipt takes a ready nonce and schedules the
    next with `call_soon`; 64 answers at a time, 2,048 in all, more than are ever ready."""
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "attack")
    signed: list[tuple[bytes, bytes]] = []

    async def answer(index: int) -> None:
        await asyncio.sleep(0)
        message = f"receipt {index}".encode()
        signed.append((message, key.sign_ahead(message)))
        asyncio.get_running_loop().call_soon(key.make_nonce)

    async def main() -> None:
        for start in range(0, 2048, 64):
            await asyncio.gather(*(answer(i) for i in range(start, start + 64)))

    asyncio.run(main())
    assert len(signed) == 2048
    _no_nonce_twice(_public(key.key), signed)
    assert len({signature[:32] for _, signature in signed}) == 2048


def test_threads_signing_at_once_never_share_a_nonce() -> None:
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "attack")
    signed: list[tuple[bytes, bytes]] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for index in range(250):
            message = f"receipt {worker}.{index}".encode()
            signature = key.sign_ahead(message)
            key.make_nonce()
            with lock:
                signed.append((message, signature))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(signed) == 2000
    _no_nonce_twice(_public(key.key), signed)
    for message, signature in signed[::97]:
        key.key.public_key().verify(signature, message)


def test_a_forked_child_does_not_sign_with_the_parents_ready_nonces() -> None:
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "attack")
    fast = key.fast
    assert fast is not None
    for _ in range(sodium.NONCES_READY):
        key.make_nonce()
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the child: one receipt, its R to the parent
        try:
            os.write(writing, key.sign_ahead(b"the child's receipt"))
        finally:
            os._exit(0)
    os.close(writing)
    try:
        child_signature = os.read(reading, 64)
    finally:
        os.close(reading)
        os.waitpid(child, 0)
    assert len(child_signature) == 64
    signed = [(b"the child's receipt", child_signature)]
    while fast._nonces:  # the parent uses every nonce it had ready at the fork
        message = f"parent {len(signed)}".encode()
        signed.append((message, key.sign_ahead(message)))
    assert len(signed) == 1 + sodium.NONCES_READY
    _no_nonce_twice(_public(key.key), signed)


def test_a_nonce_from_before_a_restored_snapshot_is_not_used() -> None:
    """A memory snapshot of a running guardian (a VM's, CRIU's) restored twice holds the
    same ready nonces in both copies: a nonce older than `NONCE_MAX_AGE_S` by the wall
    clock (restoring takes longer than that) is dropped with all below it, and the receipt
    is signed the RFC 8032 way."""
    key = Ed25519PrivateKey.generate()
    fast = sodium.signer(key)
    assert fast is not None and fast.ahead
    for _ in range(sodium.NONCES_READY):
        fast.make_nonce()
    snapshot = list(fast._nonces)
    restored_later = [(r, point, made - 60.0) for r, point, made in snapshot]
    fast._nonces[:] = restored_later
    signature = fast.sign_ahead(b"a receipt after the restore")
    assert signature == key.sign(b"a receipt after the restore")
    assert fast._nonces == []
    assert signature[:32] not in {point for _, point, _ in snapshot}
