"""PostgreSQL through an asyncpg pool; every table in schema `sealgate`.

When the server terminates connections (a restart, a failover, an idle reaper), the failed
operation's connection is dropped and the pool's other connections are expired. The operation
is tried once more on a fresh connection only when that cannot do it twice: it is a read or is
marked idempotent, or the connection was lost before it was sent. A transaction is never
retried: the caller knows whether its work may run again.
"""

from __future__ import annotations

import functools
import logging
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import asyncpg.exceptions._base as asyncpg_base

from guardian.storage.base import (
    Reservation,
    Row,
    Storage,
    StorageError,
    StorageRefused,
    StorageUnreachable,
    Transaction,
    reservation_values,
)
from guardian.storage.dsn import clean
from guardian.storage.schema import POSTGRES_TYPES

logger = logging.getLogger("sealgate.guardian.storage")

T = TypeVar("T")
# pg_advisory_xact_lock key held while migrating: every SealGate guardian uses the same one
MIGRATION_LOCK = zlib.crc32(b"sealgate.migrations")
_CONNECTION_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)
#: Values the server (or asyncpg, encoding them: an int beyond 64 bits) will not store; the
#: client-side one is an `InterfaceError`, so it is told apart before a lost connection.
_REFUSED = (
    asyncpg_base.DataError,
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
)
#: Failures to connect that trying again later may cure (the server is down or busy).
_CONNECT_TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


class _OneLine(logging.Filter):
    """asyncpg's pool logs a traceback each time it cannot refill itself while the server is
    away; the outage is already logged by us, so keep its one-line reason only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_OneLine())


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """`?` -> `$1, $2, ...` (our SQL never has a literal question mark); our statements are a
    fixed set, so each is rewritten once."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${number}{part}" for number, part in enumerate(parts[1:], 1))


async def _keepalive(connection: asyncpg.Connection) -> None:
    """TCP keepalives, so a dead peer behind a NAT or load balancer is noticed."""
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class Listening:
    """One LISTEN connection."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    def closed(self) -> bool:
        return bool(self._connection.is_closed())

    async def close(self) -> None:
        if not self._connection.is_closed():
            await self._connection.close(timeout=5)


def _status_count(status: object) -> int:
    tail = status.rsplit(" ", 1)[-1] if isinstance(status, str) else ""
    return int(tail) if tail.isdigit() else 0


def _is_read(sql: str) -> bool:
    return sql.lstrip().upper().startswith("SELECT")


class _PostgresTransaction(Transaction):
    types = POSTGRES_TYPES

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def _run(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except _REFUSED as exc:
            raise StorageRefused(f"postgresql refused the values: {exc}") from exc
        except _CONNECTION_LOST as exc:
            raise StorageError(f"postgresql: connection lost ({type(exc).__name__})") from exc
        except asyncpg.PostgresError as exc:
            raise StorageError(f"postgresql: {exc}") from exc

    async def execute(self, sql: str, *args: Any) -> int:
        return _status_count(await self._run(self._connection.execute(_placeholders(sql), *args)))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        records = await self._run(self._connection.fetch(_placeholders(sql), *args))
        return [dict(record) for record in records]

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._run(self._connection.executemany(_placeholders(sql), rows))


class PostgresStorage(Storage):
    kind = "postgresql"
    types = POSTGRES_TYPES

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        """Raises `StorageError` for a malformed URL (the message holds no credential)."""
        try:
            self.clean = clean(dsn)
        except ValueError as exc:
            raise StorageError(str(exc)) from None
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self, connect_timeout: float = 10.0) -> None:
        """Connect; `StorageUnreachable` when the server did not answer, `StorageError` when
        it refused (credentials, database name) or the URL cannot work."""
        if self.clean.removed:
            logger.info(
                "DATABASE_URL: removed %s (set per transaction instead)",
                ", ".join(self.clean.removed),
            )
        if self.clean.ssl_raised:
            logger.info("DATABASE_URL: sslmode raised to 'require' for host %s", self.clean.host)
        try:
            self._pool = await asyncpg.create_pool(
                self.clean.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                init=_keepalive,
                command_timeout=30,
                server_settings={"application_name": "sealgate-guardian"},
                timeout=connect_timeout,
            )
        except _CONNECT_TRANSIENT as exc:
            reason = str(exc) or type(exc).__name__
            if "rejected SSL upgrade" in reason:  # asyncpg's words; a server will not change
                raise StorageError(
                    f"DATABASE_URL's {self.clean.where()} answered but offers no TLS, and"
                    " SealGate sends the URL only over TLS (sslmode=require) to a database"
                    " that is not on loopback or a Unix socket: turn on ssl in the server's"
                    " configuration, or reach it over loopback or a socket"
                ) from exc
            raise StorageUnreachable(
                f"cannot reach DATABASE_URL's {self.clean.where()}: {reason}"
            ) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise StorageError(f"DATABASE_URL's {self.clean.where()} refused: {exc}") from exc

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("The PostgreSQL storage is not open; call open() first.")
        return self._pool

    async def _with_retry(
        self, operation: Callable[[asyncpg.Connection], Awaitable[T]], *, idempotent: bool
    ) -> T:
        """Run on a pooled connection. After a lost connection, try once more only if nothing
        was sent yet or the operation is idempotent: a write that may have committed is never
        repeated blindly."""
        pool = self._require_pool()
        for attempt in (1, 2):
            sent = False
            try:
                async with pool.acquire() as connection:
                    if connection.is_closed():
                        raise asyncpg.InterfaceError("connection is closed")
                    sent = True
                    return await operation(connection)
            except _REFUSED as exc:
                raise StorageRefused(f"postgresql refused the values: {exc}") from exc
            except _CONNECTION_LOST as exc:
                await pool.expire_connections()
                lost = f"postgresql: connection lost ({type(exc).__name__})"
                if attempt == 2:
                    raise StorageError(lost) from exc
                if sent and not idempotent:
                    raise StorageError(f"{lost}; the write may or may not have happened") from exc
                logger.warning("%s; reconnecting", lost)
            except asyncpg.PostgresError as exc:
                raise StorageError(f"postgresql: {exc}") from exc
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        pool = self._require_pool()
        try:
            connection = await pool.acquire()
        except _CONNECTION_LOST as exc:
            raise StorageError(f"postgresql: cannot connect ({type(exc).__name__})") from exc
        try:
            tx = connection.transaction()
            try:
                await tx.start()
            except (*_CONNECTION_LOST, asyncpg.PostgresError) as exc:
                raise StorageError(f"postgresql: cannot begin ({type(exc).__name__})") from exc
            try:
                yield _PostgresTransaction(connection)
            except BaseException:
                if not connection.is_closed():
                    try:
                        await tx.rollback()
                    except (*_CONNECTION_LOST, asyncpg.PostgresError):
                        logger.warning("postgresql: rollback failed; dropping the connection")
                        connection.terminate()
                raise
            try:
                await tx.commit()
            except _CONNECTION_LOST as exc:
                raise StorageError(
                    f"postgresql: connection lost at commit ({type(exc).__name__});"
                    " the transaction may or may not have committed"
                ) from exc
            except asyncpg.PostgresError as exc:
                raise StorageError(f"postgresql: {exc}") from exc
        finally:
            try:
                await pool.release(connection)
            except _CONNECTION_LOST:
                # The pool could not reset it and terminated it; what happened above stands
                # (an outage mid-transaction otherwise escaped here as asyncpg's own error).
                logger.warning("postgresql: a connection could not be reset; it was dropped")

    async def execute(self, sql: str, *args: Any, idempotent: bool = False) -> int:
        status = await self._with_retry(
            lambda c: c.execute(_placeholders(sql), *args), idempotent=idempotent
        )
        return _status_count(status)

    async def fetch(self, sql: str, *args: Any, idempotent: bool = False) -> list[Row]:
        records = await self._with_retry(
            lambda c: c.fetch(_placeholders(sql), *args), idempotent=idempotent or _is_read(sql)
        )
        return [dict(record) for record in records]

    async def executemany(
        self, sql: str, rows: Sequence[Sequence[Any]], *, idempotent: bool = False
    ) -> None:
        async def run(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await connection.executemany(_placeholders(sql), rows)

        await self._with_retry(run, idempotent=idempotent)

    async def write_start(self, held: Reservation, *, alone: bool = False) -> None:
        """The call's start, committed without waiting for its WAL flush
        (`synchronous_commit` off for this one statement's transaction, through
        `set_config(..., true)`): the server holds it once this returns, so it survives the
        guardian's death, and a crash of the server itself loses at most the last few
        hundred milliseconds of starts. One round trip, about a fifth of a flushed commit
        (bench/call_start.py); every other write stays flushed."""
        await self.execute(
            self.q(
                "WITH lax AS (SELECT set_config('synchronous_commit', 'off', true))"
                " INSERT INTO {s}reservations (id, principal, window_start, amount,"
                " created_at, owner, shared, tool, provider, model, counted, input_tokens,"
                " output_tokens, user_id) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
                " FROM lax"
            ),
            *reservation_values(held),
        )

    async def _lock_migrations(self, tx: Transaction) -> None:
        """A transaction-scoped advisory lock; the schema is created under it too (two
        concurrent CREATE SCHEMA IF NOT EXISTS can collide)."""
        await tx.execute("SELECT pg_advisory_xact_lock(?)", MIGRATION_LOCK)
        await tx.execute("CREATE SCHEMA IF NOT EXISTS sealgate")

    def day_of(self, column: str) -> str:
        return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    async def listen(self, channel: str, on_notify: Callable[[str], None]) -> Listening:
        """A connection of its own that hears `NOTIFY channel` (guardian/relay.py); the
        caller closes it, and opens another when `Listening.closed()` says it was lost."""
        try:
            connection = await asyncpg.connect(
                self.clean.dsn,
                timeout=10,
                server_settings={"application_name": "sealgate-guardian-listen"},
            )
        except (*_CONNECT_TRANSIENT, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageUnreachable(f"cannot listen on {self.clean.where()}: {exc}") from exc
        await _keepalive(connection)

        def heard(_c: object, _pid: object, _channel: object, payload: object) -> None:
            on_notify(str(payload))

        await connection.add_listener(channel, heard)
        return Listening(connection)

    async def notify(self, channel: str, payload: str) -> None:
        await self.execute("SELECT pg_notify(?, ?)", channel, payload)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def describe(self) -> str:
        return f"postgresql:{self.clean.redacted()}"
