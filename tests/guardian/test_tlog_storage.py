"""The audit log's tree in the guardian database, on SQLite and PostgreSQL: every audit
entry and every ledger row is a leaf, appended in its row's transaction, indices dense, the
head's root the RFC 9162 root of the leaves, and appends from two handles serialize."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.storage import Storage, open_storage
from guardian.storage.base import AuditEntry, LedgerEntry, Reservation, UsageRow
from guardian.tlog import merkle


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        store = await open_storage(request.getfixturevalue("pg_database"), tmp_path / "x.db")
    yield store
    await store.close()


async def _leaves(storage: Storage) -> list[dict[str, object]]:
    return await storage.tlog_leaves(0, 1 << 62)


async def _check_tree(storage: Storage) -> list[dict[str, object]]:
    rows = await _leaves(storage)
    head = await storage.tlog_head()
    assert [row["idx"] for row in rows] == list(range(head.size))
    hashes = [merkle.leaf_hash(str(row["leaf"]).encode()) for row in rows]
    assert [h.hex() for h in hashes] == [row["hash"] for row in rows]
    assert merkle.root(hashes) == head.root
    for row in rows:
        assert json.loads(str(row["leaf"]))["index"] == row["idx"]
    return rows


def _usage(key: str, cost: float = 0.25) -> UsageRow:
    return UsageRow(
        ts=time.time(),
        principal="ada",
        tool="llm_complete",
        provider="ant",
        model="claude",
        input_tokens=12,
        output_tokens=34,
        cost_usd=cost,
        latency_ms=5.5,
        outcome="ok",
        fallback_path="[]",
        key=key,
        user_id="u_1",
    )


async def test_an_audit_entry_is_a_leaf(storage: Storage) -> None:
    await storage.add_audit("ada", "login", "refused", "10.0.0.1", "bad password")
    rows = await _check_tree(storage)
    assert len(rows) == 1
    leaf = json.loads(str(rows[0]["leaf"]))
    audit = await storage.audit_since(0)
    assert leaf["kind"] == "audit" and leaf["id"] == audit[0]["id"] and leaf["index"] == 0
    assert leaf["action"] == "login" and leaf["ip"] == "10.0.0.1" and leaf["v"] == 1
    assert rows[0]["kind"] == "audit" and rows[0]["ref"] == str(audit[0]["id"])


async def test_a_ledger_batch_appends_its_rows_and_audits_once(storage: Storage) -> None:
    held = Reservation(
        id="r1",
        principal="ada",
        window_start=0.0,
        amount=0.5,
        created_at=1.0,
        owner="me",
        shared=False,
        tool="llm_complete",
        provider="ant",
        model="claude",
    )
    audit = AuditEntry(principal="ada", action="call.end", outcome="cancelled")
    batch = [
        LedgerEntry(usage=_usage("k1"), reservation=held, audit=audit),
        LedgerEntry(usage=_usage("k2")),
    ]
    await storage.write_ledger(batch)
    await storage.write_ledger(batch)  # retried after an unconfirmed commit: no new leaf
    rows = await _check_tree(storage)
    kinds = [(row["kind"], row["ref"]) for row in rows]
    assert kinds[0] == ("usage", "k1") and kinds[1][0] == "audit" and kinds[2] == ("usage", "k2")
    assert len(rows) == 3
    first = json.loads(str(rows[0]["leaf"]))
    assert first["cost_usd"] == 0.25 and first["input_tokens"] == 12
    assert first["reservation"] == {
        "id": "r1",
        "amount": 0.5,
        "created_at": 1.0,
        "window_start": 0.0,
        "counted": True,
    }
    # canonical: sorted keys, no spaces
    assert str(rows[0]["leaf"]).startswith('{"clamped":0,"cost_usd":0.25,')


async def test_two_handles_appending_at_once_make_one_dense_tree(
    storage: Storage, tmp_path: Path
) -> None:
    """Two guardians' storage on one database: each append takes the head row's lock, so
    indices never collide and the head's root is the root of every leaf."""
    if storage.kind == "sqlite":
        other = await open_storage(None, tmp_path / "guardian.db")
    else:
        other = await open_storage(storage.clean.dsn, tmp_path / "y.db")  # type: ignore[attr-defined]
    try:

        async def burst(store: Storage, who: str) -> None:
            for n in range(25):
                await store.add_audit(who, "login", "ok", detail=str(n))

        await asyncio.gather(burst(storage, "one"), burst(other, "two"), burst(storage, "three"))
        rows = await _check_tree(storage)
        assert len(rows) == 75
        assert (await other.tlog_head()) == (await storage.tlog_head())
    finally:
        await other.close()


async def test_a_row_without_a_canonical_form_is_refused_like_a_bad_value(
    storage: Storage,
) -> None:
    """A provider's error text may decode to a lone surrogate: the batch is refused as the
    database refuses a bad value (the ledger writer then isolates that row), never an
    exception that would stop the writer."""
    from guardian.storage.base import StorageRefused

    bad = AuditEntry(principal="ada", action="call.end", outcome="provider_error", detail="\ud800")
    with pytest.raises(StorageRefused):
        await storage.write_ledger([LedgerEntry(usage=_usage("k9"), audit=bad)])
    assert await storage.tlog_count() == 0


async def test_a_batch_partly_stored_writes_only_the_rest_once(storage: Storage) -> None:
    """A ledger batch's rows go in statements of many rows, each answering the keys it
    stored: a batch of several such statements, partly written before, with a key twice,
    writes each missing row once, one leaf each, in order; the stored ones change nothing."""
    before = [LedgerEntry(usage=_usage(f"k{i:04d}", cost=1.0)) for i in range(0, 1200, 3)]
    await storage.write_ledger(before)
    batch = [LedgerEntry(usage=_usage(f"k{i:04d}", cost=2.0)) for i in range(1200)]
    batch.insert(7, LedgerEntry(usage=_usage("k0005", cost=9.0)))  # its key again, later too
    await storage.write_ledger(batch)
    rows = await _check_tree(storage)
    refs = [str(row["ref"]) for row in rows]
    assert len(refs) == len(set(refs)) == 1200
    new = refs[len(before) :]
    assert new == [f"k{i:04d}" for i in range(1200) if i % 3]
    costs = {str(r["ref"]): json.loads(str(r["leaf"]))["cost_usd"] for r in rows}
    assert costs["k0000"] == 1.0 and costs["k0001"] == 2.0 and costs["k0005"] == 2.0
    spent = await storage.spend_since(0)
    assert spent["u_1"] == pytest.approx(len(before) * 1.0 + (1200 - len(before)) * 2.0)


async def test_a_row_another_transaction_is_writing_is_not_counted_twice(
    pg_database: str, tmp_path: Path
) -> None:
    """A batch retried while the first attempt's transaction has not yet ended (its commit
    went out, the answer was lost): PostgreSQL makes the retry's INSERT wait for it, then
    skips the row, and the retry must not give that row a second leaf."""
    import asyncpg

    store = await open_storage(pg_database, tmp_path / "unused.db")
    first = await asyncpg.connect(pg_database)
    try:
        await store.write_ledger([LedgerEntry(usage=_usage("seed"))])  # the log's head row
        racing = _usage("racing")
        columns = (
            "ts, principal, tool, provider, model, input_tokens, output_tokens, cost_usd,"
            " latency_ms, outcome, fallback_path, key, estimated, clamped, user_id,"
            " request_digest"
        )
        transaction = first.transaction()
        await transaction.start()
        await first.execute(
            f"INSERT INTO sealgate.usage ({columns}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            racing.ts, racing.principal, racing.tool, racing.provider, racing.model,
            racing.input_tokens, racing.output_tokens, racing.cost_usd, racing.latency_ms,
            racing.outcome, racing.fallback_path, racing.key, racing.estimated, racing.clamped,
            racing.user_id, racing.request_digest,
        )  # fmt: skip
        retry = asyncio.create_task(
            store.write_ledger([LedgerEntry(usage=racing), LedgerEntry(usage=_usage("other"))])
        )
        await asyncio.sleep(0.5)
        assert not retry.done()  # waiting for the first transaction's row
        await transaction.commit()
        await retry
        rows = await _check_tree(storage=store)
        assert [row["ref"] for row in rows] == ["seed", "other"]
    finally:
        await first.close()
        await store.close()
