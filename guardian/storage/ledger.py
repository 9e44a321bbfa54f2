"""The usage ledger and budget reservations: every call's ending and every call's start.

A call writes a reservation before it leaves and settles it with its usage row when it ends;
one left behind is a call that never ended, billed at its maximum at the next start. Usage rows
carry idempotency keys, so a batch retried after a lost connection never counts twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from guardian.storage.audit import AuditEntry, insert_audit
from guardian.storage.database import Database, Row, Transaction
from guardian.storage.tlog import Leaf, append_leaves, usage_leaf


def new_usage_key() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    ts: float
    principal: str
    tool: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_ms: float
    outcome: str  # "ok" or an error code
    fallback_path: str  # JSON list of {"provider", "error"}
    key: str = field(default_factory=new_usage_key)  # idempotency key: a retry cannot count twice
    estimated: bool = False  # SealGate counted a figure itself (see guardian.usage_figures)
    clamped: bool = False  # the provider reported more than the request allowed
    user_id: str = ""  # the user's id ('' for the operator and open mode); principal is the name
    request_digest: str = ""  # SHA-256 of the sealed request (its receipt is signed over it)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """A call's start and maximum cost, written before it leaves and deleted with its usage
    row: one left behind is a call that never ended. `counted` when the amount is held
    against the principal's budget (a principal without a budget holds nothing)."""

    id: str
    principal: str
    window_start: float  # the budget month it counts in
    amount: float
    created_at: float
    owner: str  # the guardian that made it (host and runtime directory)
    shared: bool  # counted in the database's counters (PostgreSQL), else in memory
    tool: str
    provider: str
    model: str
    counted: bool = True
    input_tokens: int = 0  # the call's input bound, billed if it never ends
    output_tokens: int = 0  # its max_tokens
    user_id: str = ""  # whose budget it counts against ('' for a principal without an id)

    @property
    def budget_key(self) -> str:
        return self.user_id or self.principal


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    """One ending of one call: its usage row, the reservation it settles, its audit entry."""

    usage: UsageRow
    reservation: Reservation | None = None
    audit: AuditEntry | None = None


_INSERT_USAGE = (
    "INSERT INTO {s}usage (ts, principal, tool, provider, model, input_tokens,"
    " output_tokens, cost_usd, latency_ms, outcome, fallback_path, key, estimated, clamped,"
    " user_id, request_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO NOTHING"
)
INSERT_RESERVATION = (
    "INSERT INTO {s}reservations (id, principal, window_start, amount, created_at, owner,"
    " shared, tool, provider, model, counted, input_tokens, output_tokens, user_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _usage_values(r: UsageRow) -> tuple[Any, ...]:
    return (
        r.ts,
        r.principal,
        r.tool,
        r.provider,
        r.model,
        r.input_tokens,
        r.output_tokens,
        r.cost_usd,
        r.latency_ms,
        r.outcome,
        r.fallback_path,
        r.key,
        1 if r.estimated else 0,
        1 if r.clamped else 0,
        r.user_id,
        r.request_digest,
    )


_USAGE_COLUMNS = (
    "ts",
    "principal",
    "tool",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "outcome",
    "fallback_path",
    "key",
    "estimated",
    "clamped",
    "user_id",
    "request_digest",
)


def usage_row_leaf(row: UsageRow, held: Reservation | None) -> Leaf:
    """The audit log's leaf of a ledger row: its columns as stored, and the reservation it
    settles (the call's start and the maximum that was held)."""
    values = dict(zip(_USAGE_COLUMNS, _usage_values(row), strict=True))
    reservation = (
        None
        if held is None
        else {
            "id": held.id,
            "amount": held.amount,
            "created_at": held.created_at,
            "window_start": held.window_start,
            "counted": held.counted,
        }
    )
    return usage_leaf(values, reservation)


def reservation_values(held: Reservation) -> tuple[Any, ...]:
    return (
        held.id,
        held.principal,
        held.window_start,
        held.amount,
        held.created_at,
        held.owner,
        1 if held.shared else 0,
        held.tool,
        held.provider,
        held.model,
        1 if held.counted else 0,
        held.input_tokens,
        held.output_tokens,
        held.user_id,
    )


#: Usage rows per INSERT of a ledger batch (16 values each: far under either backend's limit).
_ROWS_PER_INSERT = 100


def _insert_usage_rows(count: int) -> str:
    """`_INSERT_USAGE` for `count` rows at once, answering the keys it stored."""
    head, rest = _INSERT_USAGE.split(" VALUES ", 1)
    marks, conflict = rest.split(" ON CONFLICT ", 1)
    return f"{head} VALUES {', '.join([marks] * count)} ON CONFLICT {conflict} RETURNING key"


async def _insert_new(tx: Transaction, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    """Store the entries' usage rows, up to `_ROWS_PER_INSERT` in one statement; the entries
    whose row this stored, in order. A key stored before (a batch retried after a commit
    that was not confirmed) or twice in the batch counts once: the statement skips it and
    does not answer it, also when the same key is being written by a transaction that has
    not ended yet (PostgreSQL waits for it)."""
    stored: set[str] = set()
    for first in range(0, len(entries), _ROWS_PER_INSERT):
        chunk = entries[first : first + _ROWS_PER_INSERT]
        values = [value for entry in chunk for value in _usage_values(entry.usage)]
        rows = await tx.fetch(tx.q(_insert_usage_rows(len(chunk))), *values)
        stored.update(str(row["key"]) for row in rows)
    fresh = []
    for entry in entries:
        if entry.usage.key in stored:
            stored.discard(entry.usage.key)  # its first entry is the one the row holds
            fresh.append(entry)
    return fresh


class LedgerRepository(Database):
    """Usage rows, reservations and what they add up to."""

    # usage -------------------------------------------------------------------------------------
    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Idempotent: a row whose key is already stored is skipped, so a batch retried after
        a lost connection (which may have committed) never counts twice."""
        await self.executemany(
            self.q(_INSERT_USAGE), [_usage_values(r) for r in rows], idempotent=True
        )

    async def write_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Each ending in one transaction: its usage row; the reservation it settles, deleted
        (and, when counted in the shared counters, the counter moved from the reserved amount
        to the real cost); its audit entry. A row whose key is already stored (a batch retried
        after a commit that was not confirmed) changes nothing, so nothing counts twice."""
        async with self.transaction() as tx:
            # The rows in one statement, not one each: each statement is a hand-off to
            # SQLite's thread (a round trip to PostgreSQL), and the calls' starts wait for
            # this transaction to end.
            fresh = await _insert_new(tx, entries)
            starts: list[tuple[str]] = []  # reservations that hold no budget: one statement
            leaves: list[Leaf] = []  # appended to the audit log last: its lock is held least
            for entry in fresh:
                row = entry.usage
                leaves.append(usage_row_leaf(row, entry.reservation))
                held = entry.reservation
                if held is not None and not (held.shared and held.counted):
                    starts.append((held.id,))
                elif held is not None:
                    gone = await tx.execute(
                        tx.q("DELETE FROM {s}reservations WHERE id = ?"), held.id
                    )
                    if gone:
                        await tx.execute(
                            tx.q(
                                "UPDATE {s}counters SET value = value + ?"
                                " WHERE key = ? AND window_start = ?"
                            ),
                            (row.cost_usd or 0.0) - held.amount,
                            f"spend:{held.budget_key}",
                            held.window_start,
                        )
                if entry.audit is not None:
                    leaves.append(await insert_audit(tx, entry.audit, row.ts))
            if starts:
                await tx.executemany(tx.q("DELETE FROM {s}reservations WHERE id = ?"), starts)
            await append_leaves(tx, leaves)

    # reservations ------------------------------------------------------------------------------
    async def reserve(
        self, held: Reservation, budget: float | None, *, alone: bool = False
    ) -> float | None:
        """Write a reservation. With `budget` (shared counters), first add its amount to the
        principal's spend counter, only if that stays within the budget, in the same
        transaction: concurrent reservations on any number of guardians serialize on the
        counter's row. Returns the spend seen when refused (nothing is written), else None.
        Without a budget it is one statement, committed on its own (a call's start is on the
        call's path: one round trip); `alone`: no other call is in flight (`write_start`)."""
        if budget is None:
            await self.write_start(held, alone=alone)
            return None
        async with self.transaction() as tx:
            key = f"spend:{held.budget_key}"
            await tx.execute(
                tx.q(
                    "INSERT INTO {s}counters (key, window_start, value) VALUES (?, ?, 0)"
                    " ON CONFLICT (key, window_start) DO NOTHING"
                ),
                key,
                held.window_start,
            )
            counted = await tx.fetchrow(
                tx.q(
                    "UPDATE {s}counters SET value = value + ? WHERE key = ?"
                    " AND window_start = ? AND value + ? <= ? RETURNING value"
                ),
                held.amount,
                key,
                held.window_start,
                held.amount,
                budget,
            )
            if counted is None:
                seen = await tx.fetchrow(
                    tx.q("SELECT value FROM {s}counters WHERE key = ? AND window_start = ?"),
                    key,
                    held.window_start,
                )
                return float(seen["value"]) if seen else 0.0
            await tx.execute(tx.q(INSERT_RESERVATION), *reservation_values(held))
        return None

    async def write_start(self, held: Reservation, *, alone: bool = False) -> None:
        """A reservation that holds nothing against a budget (the call's start), in one
        statement committed on its own. Written, not fsynced, is enough: it must survive the
        guardian's death, not the database's. SQLite in WAL mode has written it to the WAL
        file when this returns (a process kill keeps it; `synchronous=NORMAL` may lose it
        on a power cut). `alone` (no other call in flight) changes nothing here; SQLite
        writes such a start without a thread hand-off."""
        await self.execute(self.q(INSERT_RESERVATION), *reservation_values(held))

    async def settle_leftover_reservations(self, owner: str, stale_before: float) -> list[Row]:
        """Calls that never ended (their guardian stopped first, a SIGKILL say): ours from a
        previous run, and anyone's older than any call can last. Each becomes a usage row
        with outcome `interrupted`, billed at the call's maximum (its input bound and
        max_tokens, at the reserved amount), marked `estimated`, and audited. A budget's
        shared counter already holds a counted amount; an uncounted one is added to it."""
        leftovers = await self.fetch(
            self.q("SELECT * FROM {s}reservations WHERE owner = ? OR created_at < ?"),
            owner,
            stale_before,
        )
        settled = []
        for held in leftovers:
            async with self.transaction() as tx:
                if not await tx.execute(
                    tx.q("DELETE FROM {s}reservations WHERE id = ?"), held["id"]
                ):
                    continue  # another guardian settled it first
                now = time.time()
                amount = float(held["amount"])
                usage = UsageRow(
                    ts=now,
                    principal=held["principal"],
                    tool=held["tool"],
                    provider=held["provider"],
                    model=held["model"],
                    input_tokens=int(held["input_tokens"]),
                    output_tokens=int(held["output_tokens"]),
                    cost_usd=amount,
                    latency_ms=0.0,
                    outcome="interrupted",
                    fallback_path="[]",
                    key=f"reservation:{held['id']}",
                    estimated=True,
                    user_id=held["user_id"] or "",
                )
                await tx.execute(tx.q(_INSERT_USAGE), *_usage_values(usage))
                if held["shared"] and not held["counted"] and amount:
                    await tx.execute(
                        tx.q(
                            "INSERT INTO {s}counters AS c (key, window_start, value)"
                            " VALUES (?, ?, ?) ON CONFLICT (key, window_start) DO UPDATE"
                            " SET value = c.value + excluded.value"
                        ),
                        f"spend:{held['user_id'] or held['principal']}",
                        held["window_start"],
                        amount,
                    )
                audit = AuditEntry(
                    principal=held["principal"],
                    action="budget.settle",
                    outcome="interrupted",
                    detail=(
                        "a call started and never ended (its guardian stopped first); billed"
                        f" its maximum, {usage.input_tokens} input and {usage.output_tokens}"
                        f" output tokens, {amount:.6f} USD (estimated)"
                    ),
                    tool=held["tool"],
                    user_id=held["user_id"] or "",
                )
                await append_leaves(
                    tx,
                    [
                        usage_row_leaf(usage, None),
                        await insert_audit(tx, audit, now),
                    ],
                )
            settled.append(held)
        return settled

    async def spend_since(self, since: float) -> dict[str, float]:
        """Spend by budget key: the user's id, or the name of a principal without one (rows
        of a name that no user holds now count for nobody's budget)."""
        rows = await self.fetch(
            self.q(
                "SELECT CASE WHEN user_id = '' THEN principal ELSE user_id END AS who,"
                " SUM(cost_usd) AS spent FROM {s}usage WHERE ts >= ?"
                " AND cost_usd IS NOT NULL GROUP BY who"
            ),
            since,
        )
        return {row["who"]: float(row["spent"] or 0.0) for row in rows}
