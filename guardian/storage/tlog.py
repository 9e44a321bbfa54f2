"""The audit log's Merkle tree in the guardian database: one leaf per audit entry and per
ledger row, appended in the transaction that writes the row.

Each leaf is the RFC 8785 JSON of its record (`audit_leaf`, `usage_leaf`) with its own
index in it, so a row moved to another index no longer matches. `tlog_head` holds the tree's
size and frontier (RFC 9162 roots of its perfect subtrees); an append locks that one row
first, so appends from any number of guardians on one PostgreSQL serialize, and the indices
are dense. Prompts and answers are never in a leaf: a ledger row holds figures, and a
request's digest when the call path gives one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guardian.storage.database import Database, Row, StorageRefused, Transaction
from guardian.tlog import canonical, merkle

LEAF_VERSION = 1


@dataclass(frozen=True, slots=True)
class Leaf:
    """A record waiting for its index: kind (`audit`, `usage`), the row it stands for (the
    audit id, the usage key), its time and its fields."""

    kind: str
    ref: str
    ts: float
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    root: bytes


def usage_leaf(values: dict[str, Any], reservation: dict[str, Any] | None) -> Leaf:
    """A ledger row (its column values) and the reservation it settles."""
    return Leaf(
        kind="usage",
        ref=str(values["key"]),
        ts=float(values["ts"]),
        record={**values, "reservation": reservation},
    )


def encode(leaf: Leaf, index: int) -> str:
    return canonical.encode({**leaf.record, "v": LEAF_VERSION, "kind": leaf.kind, "index": index})


def leaf_digest(text: str) -> bytes:
    return merkle.leaf_hash(text.encode("utf-8"))


async def append_leaves(tx: Transaction, leaves: Sequence[Leaf]) -> int:
    """Append in order, inside the caller's transaction; returns the first new index. The
    head's row lock is held until the caller commits."""
    if not leaves:
        return -1
    await tx.execute(tx.q("UPDATE {s}tlog_head SET size = size WHERE id = 1"))
    head = await tx.fetchrow(tx.q("SELECT size, frontier FROM {s}tlog_head WHERE id = 1"))
    if head is None:
        raise RuntimeError("the audit log's head row is missing (schema not migrated)")
    size = int(head["size"])
    frontier = [bytes.fromhex(h) for h in json.loads(head["frontier"])]
    first = size
    rows = []
    for leaf in leaves:
        try:
            text = encode(leaf, size)
        except canonical.NotCanonical as exc:  # as the database refuses what it cannot store
            raise StorageRefused(f"a {leaf.kind} row has no canonical form: {exc}") from None
        digest = leaf_digest(text)
        rows.append((size, leaf.ts, leaf.kind, leaf.ref, text, digest.hex()))
        frontier = merkle.append(frontier, size, digest)
        size += 1
    await tx.executemany(
        tx.q("INSERT INTO {s}tlog (idx, ts, kind, ref, leaf, hash) VALUES (?, ?, ?, ?, ?, ?)"),
        rows,
    )
    await tx.execute(
        tx.q("UPDATE {s}tlog_head SET size = ?, frontier = ? WHERE id = 1"),
        size,
        json.dumps([h.hex() for h in frontier]),
    )
    return first


class TlogRepository(Database):
    """Reads of the audit log's tree."""

    async def tlog_head(self) -> Head:
        row = await self.fetchrow(self.q("SELECT size, frontier FROM {s}tlog_head WHERE id = 1"))
        if row is None:
            return Head(size=0, root=merkle.EMPTY_ROOT)
        frontier = [bytes.fromhex(h) for h in json.loads(row["frontier"])]
        return Head(size=int(row["size"]), root=merkle.frontier_root(frontier))

    async def tlog_leaves(self, start: int, end: int) -> list[Row]:
        """Rows with start <= idx < end, by index (a missing or extra row shows as such)."""
        return await self.fetch(
            self.q(
                "SELECT idx, ts, kind, ref, leaf, hash FROM {s}tlog"
                " WHERE idx >= ? AND idx < ? ORDER BY idx"
            ),
            start,
            end,
        )

    async def tlog_count(self) -> int:
        row = await self.fetchrow(self.q("SELECT COUNT(*) AS n FROM {s}tlog"))
        return int(row["n"]) if row else 0

    async def tlog_find(self, kind: str, ref: str) -> Row | None:
        return await self.fetchrow(
            self.q("SELECT idx, ts, kind, ref, leaf, hash FROM {s}tlog WHERE kind = ? AND ref = ?"),
            kind,
            ref,
        )
