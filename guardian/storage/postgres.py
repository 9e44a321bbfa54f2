"""PostgreSQL through an asyncpg pool; every table in schema `sealgate`.

When the server terminates connections (a restart, a failover, an idle reaper), the failed
operation's connection is dropped, the pool's other connections are expired, and the
operation is tried once more on a fresh connection.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from guardian.storage.base import Row, Storage, StorageError
from guardian.storage.dsn import clean
from guardian.storage.schema import POSTGRES_TYPES

logger = logging.getLogger("sealgate.guardian.storage")

T = TypeVar("T")
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


def _placeholders(sql: str) -> str:
    """`?` -> `$1, $2, ...` (our SQL never has a literal question mark)."""
    out: list[str] = []
    number = 0
    for char in sql:
        if char == "?":
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


async def _keepalive(connection: asyncpg.Connection) -> None:
    """TCP keepalives, so a dead peer behind a NAT or load balancer is noticed."""
    transport = getattr(connection, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class PostgresStorage(Storage):
    kind = "postgresql"
    types = POSTGRES_TYPES

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.clean = clean(dsn)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
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
            )
        except (*_CONNECTION_LOST, asyncpg.PostgresError) as exc:
            raise StorageError(f"cannot connect to {self.clean.redacted()}: {exc}") from exc
        await self.execute("CREATE SCHEMA IF NOT EXISTS sealgate")

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("The PostgreSQL storage is not open; call open() first.")
        return self._pool

    async def _with_retry(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = self._require_pool()
        for attempt in (1, 2):
            try:
                async with pool.acquire() as connection:
                    return await operation(connection)
            except _CONNECTION_LOST as exc:
                if attempt == 2:
                    raise StorageError(
                        f"postgresql: connection lost ({type(exc).__name__})"
                    ) from exc
                logger.warning("postgresql connection lost (%s); reconnecting", type(exc).__name__)
                await pool.expire_connections()
            except asyncpg.PostgresError as exc:
                raise StorageError(f"postgresql: {exc}") from exc
        raise AssertionError("unreachable")

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._with_retry(lambda c: c.execute(_placeholders(sql), *args))
        tail = status.rsplit(" ", 1)[-1] if isinstance(status, str) else ""
        return int(tail) if tail.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        records = await self._with_retry(lambda c: c.fetch(_placeholders(sql), *args))
        return [dict(record) for record in records]

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async def run(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await connection.executemany(_placeholders(sql), rows)

        await self._with_retry(run)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def describe(self) -> str:
        return f"postgresql:{self.clean.redacted()}"
