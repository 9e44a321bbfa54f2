"""Signed checkpoints: the key where secrets are kept, a checkpoint only over leaves that
extend the last one, exported to files outside the database."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.secretstore import SecretStore
from guardian.storage import Storage, open_storage
from guardian.tlog import merkle, note
from guardian.tlog import proofs as proofs_module
from guardian.tlog.checkpoints import HISTORY, LATEST, PUBLIC_KEY, Checkpointer
from guardian.tlog.signing_key import KEY_FILE, STORE_ENTRY, SigningKeyError, load_signing_key


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(None, tmp_path / "guardian.db")
    yield store
    await store.close()


async def test_without_the_store_the_key_is_a_0600_file_made_once(
    storage: Storage, tmp_path: Path
) -> None:
    off = SecretStore(storage, None, "no master key")
    first = await load_signing_key(off, tmp_path, "sealgate.test/audit")
    assert first.where == f"file {tmp_path / KEY_FILE} (0600)"
    assert os.stat(tmp_path / KEY_FILE).st_mode & 0o777 == 0o600
    again = await load_signing_key(off, tmp_path, "sealgate.test/audit")
    assert again.vkey == first.vkey and again.vkey.startswith("sealgate.test/audit+")
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        await load_signing_key(off, tmp_path, "sealgate.test/audit")


async def test_with_the_store_the_key_is_a_secret_shared_by_replicas(
    storage: Storage, tmp_path: Path
) -> None:
    store = SecretStore(storage, b"k" * 32)
    await store.start()
    first = await load_signing_key(store, tmp_path, "sealgate.test/audit")
    assert first.where == f"secret store ({STORE_ENTRY})" and not (tmp_path / KEY_FILE).exists()
    replica = SecretStore(storage, b"k" * 32)
    await replica.start()
    assert (await load_signing_key(replica, tmp_path / "x", "sealgate.test/audit")).vkey == (
        first.vkey
    )


async def test_a_checkpoint_is_signed_exported_and_only_over_an_extension(
    storage: Storage, tmp_path: Path
) -> None:
    key = await load_signing_key(SecretStore(storage, None), tmp_path, "sealgate.test/audit")
    export = tmp_path / "export"
    signer = Checkpointer(storage, key, export, every_s=60, every_leaves=10)
    signer.start()
    assert (export / PUBLIC_KEY).read_text().strip() == key.vkey
    for n in range(5):
        await storage.add_audit("ada", "login", "ok", detail=str(n))
    signed = await signer.checkpoint()
    checkpoint = note.open_checkpoint((export / LATEST).read_text(), key.vkey)
    head = await storage.tlog_head()
    assert checkpoint == note.Checkpoint("sealgate.test/audit", 5, head.root) and signed.size == 5

    # another guardian (or a restart) picks up from the exported history
    await storage.add_audit("ada", "logout", "ok")
    restarted = Checkpointer(storage, key, export, every_s=60, every_leaves=10)
    restarted.start()
    assert restarted.last.size == 5
    assert (await restarted.checkpoint()).size == 6
    history = [json.loads(line) for line in (export / HISTORY).read_text().splitlines()]
    assert [h["size"] for h in history] == [5, 6]

    # a leaf covered by the last checkpoint rewritten (text and hash): nothing is signed
    await storage.execute("UPDATE tlog SET leaf = ?, hash = ? WHERE idx = 2", "{}", "00" * 32)
    await storage.add_audit("ada", "logout", "ok")
    await storage.execute(
        "UPDATE tlog_head SET size = 7, frontier = ? WHERE id = 1",
        json.dumps([h.hex() for h in merkle.append([], 0, merkle.leaf_hash(b"x"))]),
    )
    assert (await restarted.checkpoint()).size == 6
    assert restarted.stats()["refused"] == "the leaves do not hash to the head's root"
    assert note.open_checkpoint((export / LATEST).read_text(), key.vkey).size == 6


async def test_cached_proofs_equal_the_plain_rfc9162_ones(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks, so every case occurs: a leaf inside a cached chunk, on the ragged right
    edge, trees that grow between proofs, and a missing leaf."""
    monkeypatch.setattr(proofs_module, "CHUNK", 4)
    monkeypatch.setattr(proofs_module, "PAGE", 8)
    proofs = proofs_module.Proofs(storage)
    for n in range(45):
        await storage.add_audit("ada", "login", "ok", detail=str(n))
    rows = await storage.tlog_leaves(0, 100)
    hashes = [bytes.fromhex(str(row["hash"])) for row in rows]
    for size in (1, 3, 4, 5, 17, 32, 33, 45, 20):  # the cache only grows; 20 after 45
        for index in range(size):
            assert await proofs.inclusion(index, size) == merkle.inclusion_proof(
                hashes[:size], index
            )
        for old in range(1, size + 1):
            assert await proofs.consistency(old, size) == merkle.consistency_proof(
                hashes[:size], old
            )
    assert len(proofs.roots) < 45  # a few entries per chunk, never one per leaf
    await storage.execute("DELETE FROM tlog WHERE idx = 44")
    with pytest.raises(proofs_module.MissingLeaves):
        await proofs_module.Proofs(storage).inclusion(0, 45)
