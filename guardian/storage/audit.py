"""The audit log: who did what, from where, with what outcome (append-only)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from guardian.storage.database import Database, Row, StorageError, Transaction
from guardian.storage.tlog import Leaf, append_leaves


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    principal: str
    action: str
    outcome: str
    ip: str = ""
    detail: str = ""
    tool: str = ""
    user_id: str = ""


INSERT_AUDIT = (
    "INSERT INTO {s}audit (ts, principal, action, outcome, ip, detail, tool, user_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def audit_values(a: AuditEntry, ts: float) -> tuple[Any, ...]:
    return (ts, a.principal, a.action, a.outcome, a.ip, a.detail[:2000], a.tool, a.user_id)


def audit_leaf(entry: AuditEntry, ts: float, audit_id: int, detail: str) -> Leaf:
    return Leaf(
        kind="audit",
        ref=str(audit_id),
        ts=ts,
        record={
            "id": audit_id,
            "ts": ts,
            "principal": entry.principal,
            "user_id": entry.user_id,
            "action": entry.action,
            "outcome": entry.outcome,
            "tool": entry.tool,
            "ip": entry.ip,
            "detail": detail,
        },
    )


async def insert_audit(tx: Transaction, entry: AuditEntry, ts: float) -> Leaf:
    """Write one entry inside `tx`; returns the leaf that records it in the audit log (the
    caller appends it, with the rest of its transaction's leaves)."""
    row = await tx.fetchrow(tx.q(INSERT_AUDIT + " RETURNING id"), *audit_values(entry, ts))
    if row is None:
        raise StorageError("the audit entry was not written (no id came back)")
    return audit_leaf(entry, ts, int(row["id"]), entry.detail[:2000])


class AuditRepository(Database):
    """Appends to the audit log and reads it back, oldest first."""

    # audit -------------------------------------------------------------------------------------
    async def add_audit(
        self,
        principal: str,
        action: str,
        outcome: str,
        ip: str = "",
        detail: str = "",
        tool: str = "",
        *,
        user_id: str = "",
    ) -> None:
        entry = AuditEntry(
            principal=principal,
            action=action,
            outcome=outcome,
            ip=ip,
            detail=detail,
            tool=tool,
            user_id=user_id,
        )
        async with self.transaction() as tx:
            await append_leaves(tx, [await insert_audit(tx, entry, time.time())])

    async def audit_since(
        self,
        since: float,
        after_id: int = 0,
        limit: int = 1000,
        *,
        user: str | None = None,
        tool: str | None = None,
    ) -> list[Row]:
        """Entries matching every filter, oldest first; the limit counts matching rows."""
        return await self.fetch(
            self.q(
                "SELECT id, ts, principal, user_id, action, tool, outcome, ip, detail"
                " FROM {s}audit"
                " WHERE ts >= ? AND id > ? AND (? = '' OR principal = ?) AND (? = '' OR tool = ?)"
                " ORDER BY id LIMIT ?"
            ),
            since,
            after_id,
            user or "",
            user or "",
            tool or "",
            tool or "",
            limit,
        )
