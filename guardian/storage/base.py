"""What the guardian stores, written once against a few primitives each backend provides.

SQL here uses `?` placeholders and `{s}` for the table prefix; a backend rewrites both for
its driver. Every value is passed as a parameter, never formatted into the text.

Writes that belong together go through `transaction()`: every statement on one connection,
committed together or not at all. A write whose connection is lost mid-statement is never
retried blindly (it may have committed): only reads and statements marked idempotent are; the
usage ledger writes with idempotency keys so a retried batch cannot count twice.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from guardian.storage.schema import MIGRATIONS

Row = dict[str, Any]
# usage.report groupings -> the column grouped on ("day" is computed by the backend)
USAGE_GROUPS = {
    "user": "principal",
    "model": "model",
    "provider": "provider",
    "tool": "tool",
    "day": "ts",
}
_USAGE_REPORT = (
    "SELECT {key} AS key, COUNT(*) AS calls,"
    " SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors,"
    " SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,"
    " SUM(COALESCE(cost_usd, 0)) AS cost_usd"
    " FROM {s}usage WHERE ts >= ? GROUP BY {key} ORDER BY {key}"
)


def new_usage_key() -> str:
    return uuid.uuid4().hex


def new_user_id() -> str:
    """A user's stable id: never reused, so a new user of an old name inherits nothing."""
    return "u_" + uuid.uuid4().hex


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
class AuditEntry:
    principal: str
    action: str
    outcome: str
    ip: str = ""
    detail: str = ""
    tool: str = ""
    user_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    """One ending of one call: its usage row, the reservation it settles, its audit entry."""

    usage: UsageRow
    reservation: Reservation | None = None
    audit: AuditEntry | None = None


_INSERT_USAGE = (
    "INSERT INTO {s}usage (ts, principal, tool, provider, model, input_tokens,"
    " output_tokens, cost_usd, latency_ms, outcome, fallback_path, key, estimated, clamped,"
    " user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
_INSERT_RESERVATION = (
    "INSERT INTO {s}reservations (id, principal, window_start, amount, created_at, owner,"
    " shared, tool, provider, model, counted, input_tokens, output_tokens, user_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_AUDIT = (
    "INSERT INTO {s}audit (ts, principal, action, outcome, ip, detail, tool, user_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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
    )


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


def _audit_values(a: AuditEntry, ts: float) -> tuple[Any, ...]:
    return (ts, a.principal, a.action, a.outcome, a.ip, a.detail[:2000], a.tool, a.user_id)


class StorageError(Exception):
    """The database could not do what was asked (unreachable, or a constraint failed)."""


class StorageRefused(StorageError):
    """The database refused these values (out of range, a constraint): sending them again
    cannot help, unlike a lost connection."""


class StorageUnreachable(StorageError):
    """The server did not answer (refused, timed out, starting up): trying later may help,
    unlike a malformed URL or refused credentials."""


class Transaction(abc.ABC):
    """Statements on one connection inside BEGIN ... COMMIT (ROLLBACK if the block raises)."""

    types: dict[str, str] = {}

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run one query; return its rows as dicts."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    def q(self, sql: str) -> str:
        return sql.format(**self.types)


class Storage(abc.ABC):
    """The guardian's tables. Subclasses provide the connection and the dialect."""

    kind = "abstract"  # "sqlite" or "postgresql"
    types: dict[str, str] = {}

    # the primitives ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any, idempotent: bool = False) -> int:
        """Run one statement on its own; return the number of rows it changed. Retried after a
        lost connection only when `idempotent` (running it twice changes nothing more)."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any, idempotent: bool = False) -> list[Row]:
        """Run one query; return its rows as dicts. A SELECT is always idempotent."""

    @abc.abstractmethod
    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], *, idempotent: bool = False
    ) -> None:
        """Run one statement per row, in one transaction."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """`async with storage.transaction() as tx:` statements committed together; never
        retried (the caller knows whether its work may run twice)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, with no credential in it."""

    @abc.abstractmethod
    async def _lock_migrations(self, tx: Transaction) -> None:
        """Hold a lock, until `tx` ends, that any other guardian migrating this database
        would also need."""

    @abc.abstractmethod
    def day_of(self, column: str) -> str:
        """An SQL expression: the UTC day (`YYYY-MM-DD`) of an epoch-seconds column."""

    async def fetchrow(self, sql: str, *args: Any, idempotent: bool = False) -> Row | None:
        rows = await self.fetch(sql, *args, idempotent=idempotent)
        return rows[0] if rows else None

    def q(self, sql: str) -> str:
        """The statement with this backend's table prefix and types filled in."""
        return sql.format(**self.types)

    # migrations ------------------------------------------------------------------------------
    async def migrate(self) -> int:
        """Bring the schema up to date in one transaction under a lock, so guardians starting
        together on one database apply each migration once."""
        async with self.transaction() as tx:
            await self._lock_migrations(tx)
            await tx.execute(
                tx.q(
                    "CREATE TABLE IF NOT EXISTS {s}schema_version (version INTEGER NOT NULL,"
                    " applied_at {real} NOT NULL)"
                )
            )
            row = await tx.fetchrow(tx.q("SELECT MAX(version) AS v FROM {s}schema_version"))
            current = int(row["v"]) if row and row["v"] is not None else 0
            if current > len(MIGRATIONS):
                raise StorageError(
                    f"the database is at schema version {current}, newer than this guardian"
                    f" knows ({len(MIGRATIONS)}); upgrade SealGate"
                )
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    await tx.execute(tx.q(statement))
                await tx.execute(
                    tx.q("INSERT INTO {s}schema_version (version, applied_at) VALUES (?, ?)"),
                    version,
                    time.time(),
                )
                current = version
        return current

    # users -------------------------------------------------------------------------------------
    async def create_user(self, name: str, password_hash: str | None, role: str) -> str | None:
        """The new user's id; None when the name is taken."""
        user_id = new_user_id()
        changed = await self.execute(
            self.q(
                "INSERT INTO {s}users (id, name, password_hash, role, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING"
            ),
            user_id,
            name,
            password_hash,
            role,
            time.time(),
        )
        return user_id if changed == 1 else None

    async def get_user(self, name: str) -> Row | None:
        return await self.fetchrow(self.q("SELECT * FROM {s}users WHERE name = ?"), name)

    async def get_user_by_id(self, user_id: str) -> Row | None:
        """The user of a stored id; None for '' (a row that belonged to nobody now)."""
        if not user_id:
            return None
        return await self.fetchrow(self.q("SELECT * FROM {s}users WHERE id = ?"), user_id)

    async def list_users(self) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT name, id, role, created_at, failed_logins, locked_until,"
                " locked_by_operator FROM {s}users ORDER BY name"
            )
        )

    async def count_users(self) -> int:
        row = await self.fetchrow(self.q("SELECT COUNT(*) AS n FROM {s}users"))
        return int(row["n"]) if row else 0

    async def set_password(self, name: str, password_hash: str) -> bool:
        return (
            await self.execute(
                self.q("UPDATE {s}users SET password_hash = ? WHERE name = ?"), password_hash, name
            )
            == 1
        )

    async def set_role(self, name: str, role: str) -> bool:
        return (
            await self.execute(self.q("UPDATE {s}users SET role = ? WHERE name = ?"), role, name)
            == 1
        )

    async def set_lock(self, name: str, until: float | None, by_operator: bool) -> bool:
        """Lock until a time (None: unlock, which also clears the failed-login count)."""
        if until is None:
            return (
                await self.execute(
                    self.q(
                        "UPDATE {s}users SET locked_until = NULL, locked_by_operator = 0,"
                        " failed_logins = 0 WHERE name = ?"
                    ),
                    name,
                )
                == 1
            )
        return (
            await self.execute(
                self.q(
                    "UPDATE {s}users SET locked_until = ?, locked_by_operator = ? WHERE name = ?"
                ),
                until,
                1 if by_operator else 0,
                name,
            )
            == 1
        )

    async def count_login_attempt(self, name: str, now: float) -> int | None:
        """Count one login attempt against the user before its password is checked, in one
        atomic statement, so parallel guesses cannot all see the old count. None when the
        user does not exist or is locked (nothing is counted then)."""
        row = await self.fetchrow(
            self.q(
                "UPDATE {s}users SET failed_logins = failed_logins + 1 WHERE name = ?"
                " AND (locked_until IS NULL OR locked_until <= ?) RETURNING failed_logins"
            ),
            name,
            now,
        )
        return int(row["failed_logins"]) if row else None

    async def add_failed_login(self, name: str) -> int:
        row = await self.fetchrow(
            self.q(
                "UPDATE {s}users SET failed_logins = failed_logins + 1 WHERE name = ?"
                " RETURNING failed_logins"
            ),
            name,
        )
        return int(row["failed_logins"]) if row else 0

    async def reset_failed_logins(self, name: str) -> None:
        await self.execute(
            self.q("UPDATE {s}users SET failed_logins = 0 WHERE name = ?"), name, idempotent=True
        )

    async def delete_user(self, name: str) -> bool:
        """The user and everything that let anyone act as them, all or nothing: API tokens,
        sessions, OAuth consents, codes, sign-in tickets and tokens (revoked, kept for the
        record). Rows are found by the user's id and, for rows older than ids, by name."""
        async with self.transaction() as tx:
            user = await tx.fetchrow(tx.q("SELECT id FROM {s}users WHERE name = ?"), name)
            if user is None:
                return False
            user_id = user["id"] or ""
            for table in ("api_tokens", "sessions", "oauth_grants", "oauth_codes", "oauth_tickets"):
                await tx.execute(
                    tx.q(f"DELETE FROM {{s}}{table} WHERE user_id = ? OR user_name = ?"),  # noqa: S608
                    user_id,
                    name,
                )
            await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE (user_id = ? OR user_name = ?)"
                    " AND revoked_at IS NULL"
                ),
                time.time(),
                user_id,
                name,
            )
            return await tx.execute(tx.q("DELETE FROM {s}users WHERE name = ?"), name) == 1

    async def revoke_oauth_of(self, user_id: str) -> int:
        """Every OAuth consent and token of a user (after a new password or role): the
        client must ask the person again."""
        async with self.transaction() as tx:
            await tx.execute(tx.q("DELETE FROM {s}oauth_grants WHERE user_id = ?"), user_id)
            await tx.execute(tx.q("DELETE FROM {s}oauth_tickets WHERE user_id = ?"), user_id)
            return await tx.execute(
                tx.q(
                    "UPDATE {s}oauth_tokens SET revoked_at = ? WHERE user_id = ?"
                    " AND revoked_at IS NULL"
                ),
                time.time(),
                user_id,
            )

    # tokens ------------------------------------------------------------------------------------
    async def create_token(
        self,
        token_id: str,
        user: str,
        token_hash: str,
        label: str,
        expires_at: float | None,
        user_id: str,
    ) -> None:
        await self.execute(
            self.q(
                "INSERT INTO {s}api_tokens (id, user_name, token_hash, label, created_at,"
                " expires_at, user_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            token_id,
            user,
            token_hash,
            label,
            time.time(),
            expires_at,
            user_id,
        )

    async def find_token(self, token_hash: str) -> Row | None:
        return await self.fetchrow(
            self.q("SELECT * FROM {s}api_tokens WHERE token_hash = ?"), token_hash
        )

    async def touch_token(self, token_id: str) -> None:
        await self.execute(
            self.q("UPDATE {s}api_tokens SET last_used_at = ? WHERE id = ?"),
            time.time(),
            token_id,
            idempotent=True,
        )

    async def list_tokens(self, user: str | None = None) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT id, user_name, label, created_at, expires_at, revoked_at, last_used_at"
                " FROM {s}api_tokens WHERE (? = '' OR user_name = ?) ORDER BY created_at"
            ),
            user or "",
            user or "",
        )

    async def revoke_token(self, token_id: str | None, token_hash: str | None) -> bool:
        return (
            await self.execute(
                self.q(
                    "UPDATE {s}api_tokens SET revoked_at = ? WHERE (id = ? OR token_hash = ?)"
                    " AND revoked_at IS NULL"
                ),
                time.time(),
                token_id or "",
                token_hash or "",
            )
            == 1
        )

    # sessions ----------------------------------------------------------------------------------
    async def create_session(
        self, id_hash: str, user: str, ip: str, user_agent: str, expires_at: float, user_id: str
    ) -> None:
        now = time.time()
        await self.execute(
            self.q(
                "INSERT INTO {s}sessions (id_hash, user_name, ip, user_agent, created_at,"
                " last_seen_at, expires_at, user_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            id_hash,
            user,
            ip,
            user_agent,
            now,
            now,
            expires_at,
            user_id,
        )

    async def get_session(self, id_hash: str) -> Row | None:
        return await self.fetchrow(self.q("SELECT * FROM {s}sessions WHERE id_hash = ?"), id_hash)

    async def touch_session(self, id_hash: str) -> None:
        await self.execute(
            self.q("UPDATE {s}sessions SET last_seen_at = ? WHERE id_hash = ?"),
            time.time(),
            id_hash,
            idempotent=True,
        )

    async def delete_session(self, id_hash: str) -> bool:
        return await self.execute(self.q("DELETE FROM {s}sessions WHERE id_hash = ?"), id_hash) == 1

    async def list_sessions(self) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT substr(id_hash, 1, 12) AS id, user_name, ip, user_agent, created_at,"
                " last_seen_at, expires_at FROM {s}sessions ORDER BY created_at"
            )
        )

    async def revoke_sessions(self, user: str | None, id_prefix: str | None) -> int:
        if user is not None:
            return await self.execute(self.q("DELETE FROM {s}sessions WHERE user_name = ?"), user)
        return await self.execute(
            self.q("DELETE FROM {s}sessions WHERE substr(id_hash, 1, 12) = ?"), id_prefix or ""
        )

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
        await self.execute(self.q(_INSERT_AUDIT), *_audit_values(entry, time.time()))

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
            starts: list[tuple[str]] = []  # reservations that hold no budget: one statement
            for entry in entries:
                row = entry.usage
                if not await tx.execute(tx.q(_INSERT_USAGE), *_usage_values(row)):
                    continue
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
                    await tx.execute(tx.q(_INSERT_AUDIT), *_audit_values(entry.audit, row.ts))
            if starts:
                await tx.executemany(tx.q("DELETE FROM {s}reservations WHERE id = ?"), starts)

    # reservations ------------------------------------------------------------------------------
    async def reserve(self, held: Reservation, budget: float | None) -> float | None:
        """Write a reservation. With `budget` (shared counters), first add its amount to the
        principal's spend counter, only if that stays within the budget, in the same
        transaction: concurrent reservations on any number of guardians serialize on the
        counter's row. Returns the spend seen when refused (nothing is written), else None.
        Without a budget it is one statement, committed on its own (a call's start is on the
        call's path: one round trip)."""
        if budget is None:
            await self.write_start(held)
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
            await tx.execute(tx.q(_INSERT_RESERVATION), *reservation_values(held))
        return None

    async def write_start(self, held: Reservation) -> None:
        """A reservation that holds nothing against a budget (the call's start), in one
        statement committed on its own. Written, not fsynced, is enough: it must survive the
        guardian's death, not the database's. SQLite in WAL mode has written it to the WAL
        file when this returns (a process kill keeps it; `synchronous=NORMAL` may lose it
        on a power cut)."""
        await self.execute(self.q(_INSERT_RESERVATION), *reservation_values(held))

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
                await tx.execute(tx.q(_INSERT_AUDIT), *_audit_values(audit, now))
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

    async def usage_report(self, since: float, by: str) -> list[Row]:
        """Calls, errors, tokens and cost since a time, grouped in SQL by one of
        `USAGE_GROUPS`; rows sorted by their key."""
        column = USAGE_GROUPS.get(by)
        if column is None:
            raise ValueError(f"usage can be grouped by {', '.join(USAGE_GROUPS)}, not {by!r}")
        key = self.day_of("ts") if by == "day" else column
        rows = await self.fetch(_USAGE_REPORT.format(key=key, **self.types), since)
        return [
            {
                "key": str(row["key"] or "-"),
                "calls": int(row["calls"]),
                "errors": int(row["errors"]),
                "input_tokens": int(row["input_tokens"]),
                "output_tokens": int(row["output_tokens"]),
                "cost_usd": round(float(row["cost_usd"]), 8),
            }
            for row in rows
        ]

    # the secret store: ciphertexts only ---------------------------------------------------------
    async def get_secret_versions(self, name: str) -> list[Row]:
        return await self.fetch(
            self.q("SELECT * FROM {s}secrets WHERE name = ? ORDER BY version"), name
        )

    async def next_secret_version(self, name: str) -> int:
        row = await self.fetchrow(
            self.q("SELECT MAX(version) AS v FROM {s}secrets WHERE name = ?"), name
        )
        return int(row["v"]) + 1 if row and row["v"] is not None else 1

    async def add_secret_version(self, name: str, version: int, nonce: str, sealed: str) -> None:
        now = time.time()
        await self.execute(
            self.q(
                "INSERT INTO {s}secrets (name, version, nonce, ciphertext, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            name,
            version,
            nonce,
            sealed,
            now,
            now,
        )

    async def current_secrets(self) -> list[Row]:
        return await self.fetch(
            self.q(
                "SELECT s.* FROM {s}secrets s WHERE s.deleted_at IS NULL AND s.version ="
                " (SELECT MAX(t.version) FROM {s}secrets t WHERE t.name = s.name)"
            )
        )

    async def all_secret_versions(self) -> list[Row]:
        return await self.fetch(self.q("SELECT * FROM {s}secrets ORDER BY name, version"))

    async def delete_secret(self, name: str) -> bool:
        changed = await self.execute(
            self.q("UPDATE {s}secrets SET deleted_at = ? WHERE name = ? AND deleted_at IS NULL"),
            time.time(),
            name,
        )
        return changed > 0

    async def secrets_generation(self) -> str:
        row = await self.fetchrow(
            self.q(
                "SELECT COUNT(*) AS n, MAX(updated_at) AS u, MAX(deleted_at) AS d FROM {s}secrets"
            )
        )
        return f"{row['n']}:{row['u']}:{row['d']}" if row else ""

    async def replace_secret_ciphertexts(self, rows: Sequence[tuple[str, int, str, str]]) -> None:
        """Re-encrypted entries, all in one transaction (rekey)."""
        now = time.time()
        await self.executemany(
            self.q(
                "UPDATE {s}secrets SET nonce = ?, ciphertext = ?, updated_at = ?"
                " WHERE name = ? AND version = ?"
            ),
            [(nonce, sealed, now, name, version) for name, version, nonce, sealed in rows],
        )

    async def mark_secret_used(self, name: str, version: int, when: float) -> None:
        await self.execute(
            self.q("UPDATE {s}secrets SET last_used_at = ? WHERE name = ? AND version = ?"),
            when,
            name,
            version,
            idempotent=True,
        )

    # shared counters (rate limits and budgets across replicas) -------------------------------
    async def add_to_counter(self, key: str, window_start: float, amount: float) -> float:
        row = await self.fetchrow(
            self.q(
                "INSERT INTO {s}counters AS c (key, window_start, value) VALUES (?, ?, ?)"
                " ON CONFLICT (key, window_start) DO UPDATE"
                " SET value = c.value + excluded.value RETURNING value"
            ),
            key,
            window_start,
            amount,
        )
        return float(row["value"]) if row else amount

    async def read_counter(self, key: str, window_start: float) -> float:
        row = await self.fetchrow(
            self.q("SELECT value FROM {s}counters WHERE key = ? AND window_start = ?"),
            key,
            window_start,
        )
        return float(row["value"]) if row else 0.0

    async def prune_counters(self, older_than: float) -> None:
        await self.execute(
            self.q("DELETE FROM {s}counters WHERE window_start < ?"), older_than, idempotent=True
        )
