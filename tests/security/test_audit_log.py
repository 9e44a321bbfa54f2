"""The verifiable audit log under attack: someone who can write the guardian's database (a
stolen DSN, a backup restored with edits) rewrites history, and `sealgate-ctl audit verify
--from <checkpoint kept elsewhere>` names the first bad leaf. On SQLite and PostgreSQL.

Each attack: edit a row, delete a row, truncate the tail, reorder two rows, replace the
whole table with a consistent forgery. Leaves after the last exported checkpoint are not yet
protected (docs/AUDIT.md states the window); the last test shows that too.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from guardian.storage import Storage, open_storage
from guardian.tlog import canonical, merkle
from protocol.adminaddr import open_admin_channel
from protocol.channel import SocketChannel
from protocol.client import RPCClient
from tests.helpers import ROOT, GuardianProcess, run_ctl
from tests.pg import PostgresServer
from tests.security.stackdb import BACKENDS, Backend, ctl, make_backend

CONFIG = """
[HUB_LIMITS]
audit_checkpoint_sec = "3600"
audit_checkpoint_leaves = "1000000"
[HUB_LIMITS_END]
"""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


@pytest.fixture
def guardian(backend: Backend) -> Iterator[GuardianProcess]:
    process = GuardianProcess(config_text=CONFIG, env=backend.env).start()
    yield process
    process.stop()


@pytest.fixture
async def db(guardian: GuardianProcess, backend: Backend) -> AsyncIterator[Storage]:
    """The attacker's own connection to the guardian's database."""
    store = await open_storage(backend.dsn or None, guardian.runtime / "guardian" / "guardian.db")
    yield store
    await store.close()


def history(guardian: GuardianProcess, users: tuple[str, ...] = ("ana", "bo", "cy")) -> Path:
    """A few audited operator actions, a checkpoint over them, and the auditor's copy of it
    (outside the database, outside the guardian's directory)."""
    for name in users:
        ctl(guardian, "users", "add", name, stdin="a long enough password\n")
        ctl(guardian, "users", "lock", name)
    # the proof of the last of them ends in a checkpoint over them all (signed now when the
    # timer's last one, which may have come between two of them, does not cover it)
    last = str(2 * len(users) - 1)
    proof = json.loads(ctl(guardian, "--json", "audit", "prove", last))
    assert proof["size"] >= 2 * len(users)
    kept = guardian.dir / "auditor-copy.checkpoint"
    shutil.copy(guardian.runtime / "guardian" / "audit" / "checkpoint", kept)
    return kept


def verify(guardian: GuardianProcess, kept: Path) -> dict[str, Any]:
    done = run_ctl(guardian.admin_path, "--json", "audit", "verify", "--from", str(kept))
    result: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (0 if result["ok"] else 1), done.stdout
    return result


async def leaves(db: Storage) -> list[dict[str, Any]]:
    return await db.tlog_leaves(0, 1 << 40)


def test_an_untouched_log_verifies_and_people_read_the_answer(guardian: GuardianProcess) -> None:
    kept = history(guardian)
    result = verify(guardian, kept)
    assert result["ok"] and result["size"] >= 6 and result["checked"]
    people = run_ctl(guardian.admin_path, "audit", "verify", "--from", str(kept))
    assert people.returncode == 0 and people.stdout.startswith("ok: ")


async def test_an_edited_leaf_is_named(guardian: GuardianProcess, db: Storage) -> None:
    kept = history(guardian)
    row = (await leaves(db))[2]
    await db.execute(
        db.q("UPDATE {s}tlog SET leaf = ? WHERE idx = 2"),
        str(row["leaf"]).replace('"ok"', '"refused"'),
    )
    result = verify(guardian, kept)
    assert not result["ok"] and result["first_bad_index"] == 2
    assert "leaf 2 was edited" in result["problem"]
    people = run_ctl(guardian.admin_path, "audit", "verify", "--from", str(kept))
    assert people.returncode == 1 and people.stdout.startswith("FAILED at leaf 2: ")


async def test_an_edited_audit_row_is_named_by_its_leaf(
    guardian: GuardianProcess, db: Storage
) -> None:
    """The table people read (`audit tail`) is checked against the log."""
    kept = history(guardian)
    row = (await leaves(db))[3]
    audit_id = json.loads(str(row["leaf"]))["id"]
    await db.execute(db.q("UPDATE {s}audit SET principal = 'nobody' WHERE id = ?"), audit_id)
    result = verify(guardian, kept)
    assert not result["ok"] and result["first_bad_index"] == 3
    assert "says another principal" in result["problem"]


async def test_a_deleted_leaf_is_named(guardian: GuardianProcess, db: Storage) -> None:
    kept = history(guardian)
    await db.execute(db.q("DELETE FROM {s}tlog WHERE idx = 1"))
    result = verify(guardian, kept)
    assert not result["ok"] and result["first_bad_index"] == 1
    assert "leaf 1 is missing" in result["problem"]


async def test_a_truncated_tail_is_named_even_with_the_head_rewritten(
    guardian: GuardianProcess, db: Storage
) -> None:
    kept = history(guardian)
    rows = await leaves(db)
    await db.execute(db.q("DELETE FROM {s}tlog WHERE idx >= 3"))
    frontier: list[bytes] = []
    for index, row in enumerate(rows[:3]):
        frontier = merkle.append(frontier, index, bytes.fromhex(str(row["hash"])))
    await db.execute(
        db.q("UPDATE {s}tlog_head SET size = 3, frontier = ? WHERE id = 1"),
        json.dumps([h.hex() for h in frontier]),
    )
    result = verify(guardian, kept)
    assert not result["ok"] and result["first_bad_index"] == 3
    assert f"the log ends at 3 leaves but a checkpoint signed {len(rows)}" in result["problem"]


async def test_two_swapped_leaves_are_named(guardian: GuardianProcess, db: Storage) -> None:
    kept = history(guardian)
    rows = await leaves(db)
    for index, other in ((1, rows[4]), (4, rows[1])):
        await db.execute(
            db.q("UPDATE {s}tlog SET leaf = ?, hash = ?, kind = ?, ref = ? WHERE idx = ?"),
            other["leaf"],
            other["hash"],
            other["kind"],
            other["ref"],
            index,
        )
    result = verify(guardian, kept)
    assert not result["ok"] and result["first_bad_index"] == 1
    assert "leaf 1 holds the record of leaf 4: moved" in result["problem"]


async def _forge(db: Storage, change: int) -> None:
    """Rewrite leaf `change` and everything it implies: the leaf's text and hash, the audit
    row it stands for, every later hash and the head, so the table is consistent."""
    rows = await leaves(db)
    frontier: list[bytes] = []
    for index, row in enumerate(rows):
        record = json.loads(str(row["leaf"]))
        if index == change:
            record["detail"] = "nothing happened here"
            await db.execute(
                db.q("UPDATE {s}audit SET detail = ? WHERE id = ?"), record["detail"], record["id"]
            )
        text = canonical.encode(record)
        digest = merkle.leaf_hash(text.encode())
        await db.execute(
            db.q("UPDATE {s}tlog SET leaf = ?, hash = ? WHERE idx = ?"), text, digest.hex(), index
        )
        frontier = merkle.append(frontier, index, digest)
    await db.execute(
        db.q("UPDATE {s}tlog_head SET frontier = ? WHERE id = 1"),
        json.dumps([h.hex() for h in frontier]),
    )


async def test_a_consistent_forgery_of_the_whole_table_is_caught_by_the_checkpoint(
    guardian: GuardianProcess, db: Storage
) -> None:
    kept = history(guardian)
    size = len(await leaves(db))
    await _forge(db, 2)
    result = verify(guardian, kept)
    assert not result["ok"] and result["first_bad_index"] == 0
    assert (
        f"the first {size} leaves do not hash to the root signed for {size}" in (result["problem"])
    )
    # and the guardian signs nothing over the forged history
    ctl(guardian, "users", "add", "dee", stdin="a long enough password\n")
    refused = run_ctl(guardian.admin_path, "--json", "audit", "prove", str(size))
    assert refused.returncode == 1 and "no signed checkpoint covers" in refused.stdout
    assert "NO CHECKPOINT SIGNED" in ctl(guardian, "status")


async def test_leaves_after_the_last_checkpoint_are_not_yet_protected(
    guardian: GuardianProcess, db: Storage
) -> None:
    """The window docs/AUDIT.md states: a consistent rewrite of leaves no checkpoint covers
    yet passes `verify`; the next checkpoint then signs the rewritten leaves."""
    kept = history(guardian)
    size = len(await leaves(db))
    ctl(guardian, "users", "add", "eve", stdin="a long enough password\n")
    await _forge(db, size)
    assert verify(guardian, kept)["ok"]


async def test_two_guardians_appending_at_once_make_one_tree(
    postgres: PostgresServer, pg_database: str
) -> None:
    """Two replicas on one PostgreSQL append concurrently: indices are dense, every audit
    row is one leaf, the root is the head's, and the log verifies."""
    backend = Backend("postgresql", postgres, pg_database)
    first = GuardianProcess(config_text=CONFIG, env=backend.env).start()
    second = GuardianProcess(config_text=CONFIG, env=backend.env).start()
    try:

        async def admin(process: GuardianProcess) -> RPCClient:
            async def connect() -> SocketChannel:
                return await open_admin_channel(process.admin_path)

            client = RPCClient(connect, client_name="ctl", call_timeout=60)
            client.start()
            assert await client.wait_connected(5)
            return client

        clients = [await admin(first), await admin(second)]
        try:
            await asyncio.gather(
                *(
                    clients[n % 2].call("users.add", {"name": f"u{n}", "role": "user"})
                    for n in range(40)
                )
            )
        finally:
            for client in clients:
                await client.close()
        db = await open_storage(pg_database, first.dir / "unused.db")
        try:
            rows = await leaves(db)
            audit_rows = await db.fetch(db.q("SELECT id FROM {s}audit"))
            head = await db.tlog_head()
        finally:
            await db.close()
        assert [row["idx"] for row in rows] == list(range(len(rows)))
        assert sorted(int(r["ref"]) for r in rows if r["kind"] == "audit") == sorted(
            int(r["id"]) for r in audit_rows
        )
        assert len(audit_rows) >= 40 and head.size == len(rows)
        assert head.root == merkle.root([merkle.leaf_hash(str(r["leaf"]).encode()) for r in rows])
        json.loads(ctl(first, "--json", "audit", "prove", "0"))
        kept = first.dir / "kept.checkpoint"
        shutil.copy(first.runtime / "guardian" / "audit" / "checkpoint", kept)
        assert verify(first, kept)["ok"]
    finally:
        first.stop()
        second.stop()


def test_the_standalone_verifier_checks_a_real_proof_and_refuses_a_changed_one(
    guardian: GuardianProcess,
) -> None:
    history(guardian)
    proof = json.loads(ctl(guardian, "--json", "audit", "prove", "3"))
    vkey_file = guardian.runtime / "guardian" / "audit" / "verifier_key"
    assert vkey_file.read_text().strip() == proof["verifier_key"]
    good = guardian.dir / "proof.json"
    good.write_text(json.dumps(proof))
    checked = run_tool("proof", str(good), "--key", str(vkey_file))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.startswith(
        f"ok: leaf 3 is in sealgate/audit's signed tree of {proof['size']}"
    )
    note = guardian.dir / "checkpoint"
    note.write_text(proof["checkpoint"])
    assert run_tool("checkpoint", str(note), "--key", proof["verifier_key"]).returncode == 0

    changed = dict(proof, leaf=proof["leaf"].replace('"ok"', '"refused"'))
    bad = guardian.dir / "bad.json"
    bad.write_text(json.dumps(changed))
    refused = run_tool("proof", str(bad), "--key", str(vkey_file))
    assert refused.returncode == 1 and refused.stdout.startswith("FAILED: the leaf is not at")
    moved = dict(proof, checkpoint=proof["checkpoint"].replace(f"\n{proof['size']}\n", "\n99\n"))
    bad.write_text(json.dumps(moved))
    refused = run_tool("proof", str(bad), "--key", str(vkey_file))
    assert refused.returncode == 1 and "does not verify" in refused.stdout


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """`python tools/audit_verify.py ...` as an auditor runs it: outside the project."""
    return subprocess.run(
        [sys.executable, "-I", str(ROOT / "tools" / "audit_verify.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        check=False,
    )


async def test_a_configuration_reload_is_a_leaf(guardian: GuardianProcess, db: Storage) -> None:
    ctl(guardian, "config", "reload")
    deadline = asyncio.get_running_loop().time() + 5
    while not [r for r in await leaves(db) if '"action":"config.reload"' in str(r["leaf"])]:
        assert asyncio.get_running_loop().time() < deadline, guardian.logs()
        await asyncio.sleep(0.05)


async def test_the_standalone_verifier_checks_the_log_still_extends_a_kept_checkpoint(
    guardian: GuardianProcess, db: Storage
) -> None:
    kept = history(guardian)
    vkey_file = guardian.runtime / "guardian" / "audit" / "verifier_key"
    ctl(guardian, "users", "add", "dee", stdin="a long enough password\n")
    proof = guardian.dir / "consistency.json"
    proof.write_text(ctl(guardian, "--json", "audit", "consistency", str(kept)))
    checked = run_tool("consistency", str(proof), "--key", str(vkey_file))
    assert checked.returncode == 0 and "extends its tree of" in checked.stdout, checked.stdout

    await _forge(db, 1)  # the tree rewritten behind the guardian, consistently
    proof.write_text(ctl(guardian, "--json", "audit", "consistency", str(kept)))
    refused = run_tool("consistency", str(proof), "--key", str(vkey_file))
    assert refused.returncode == 1 and "history was rewritten" in refused.stdout
