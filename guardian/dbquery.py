"""`db.query`: read-only SQL over the operator's own PostgreSQL tables.

The query must pass `protocol.readonly_sql.check` (one SELECT, allowlisted tables and
functions); it then runs in a READ ONLY transaction with `statement_timeout`, a fixed
`search_path`, a row cap and a byte cap. The byte cap holds at both ends: PostgreSQL itself
refuses to send a row over it (so one `repeat('x', 150000000)` never reaches the guardian's
memory), and the guardian stops adding rows once the answer would pass it (`truncated`).
It connects with DB_QUERY_URL (recommended: a role that can only read the allowlisted
tables) or, when that is unset, DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import logging
import uuid
from typing import Any

import asyncpg
import msgpack

from guardian.secrets import Secrets
from guardian.storage.dsn import clean
from protocol.errors import InvalidParams, Timeout, Unavailable
from protocol.pyfun import (
    DEFAULT_QUERY_MAX_RESULT_BYTES,
    DEFAULT_QUERY_MAX_ROWS,
    DEFAULT_QUERY_TIMEOUT_MS,
    HARD_QUERY_MAX_RESULT_BYTES,
    HARD_QUERY_MAX_ROWS,
    DbQueryConfig,
)
from protocol.readonly_sql import Policy, check

logger = logging.getLogger("sealgate.guardian.dbquery")

DEFAULT_MAX_ROWS = DEFAULT_QUERY_MAX_ROWS
HARD_MAX_ROWS = HARD_QUERY_MAX_ROWS
DEFAULT_TIMEOUT_MS = DEFAULT_QUERY_TIMEOUT_MS
#: Bytes of rows in one answer (`[DB_QUERY] max_result_bytes`), well under the RPC frame.
DEFAULT_MAX_RESULT_BYTES = DEFAULT_QUERY_MAX_RESULT_BYTES
HARD_MAX_RESULT_BYTES = HARD_QUERY_MAX_RESULT_BYTES
#: How PostgreSQL reports a row over the byte cap (an integer cast that cannot succeed).
_ROW_TOO_LARGE = "sealgate: a result row of"


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


class QuerySettings:
    """From `[DB_QUERY]`: tables, extra functions, max_rows, statement_timeout_ms."""

    def __init__(self, config: DbQueryConfig) -> None:
        self.policy = Policy.of(config.tables, config.functions)
        self.max_rows = min(config.max_rows, HARD_MAX_ROWS)
        self.timeout_ms = config.statement_timeout_ms
        self.max_result_bytes = min(config.max_result_bytes, HARD_MAX_RESULT_BYTES)


def capped(statement: str, max_bytes: int) -> str:
    """The checked statement as a subquery whose every row PostgreSQL measures before it
    sends it: a row over `max_bytes` fails the query there (the cast to int cannot succeed,
    and its message says why), so it never crosses the wire."""
    # `statement` is exactly the one statement `check` parsed and allowed.
    size = "octet_length(sealgate_result::text)"
    where = (
        f"CASE WHEN {size} > {int(max_bytes)} THEN ('{_ROW_TOO_LARGE} ' || {size} || ' bytes')"
        "::int IS NULL ELSE true END"
    )
    return f"SELECT * FROM ({statement}\n) AS sealgate_result WHERE {where}"  # noqa: S608


class QueryRunner:
    def __init__(self, dsn: str, name: str = "DB_QUERY_URL") -> None:
        self.dsn = clean(dsn, name)
        self._pool: asyncpg.Pool | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn.dsn, min_size=0, max_size=4, command_timeout=60
                )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise Unavailable(
                    f"the query database is unreachable ({type(exc).__name__})"
                ) from exc
        return self._pool

    async def run(self, sql: str, settings: QuerySettings, max_rows: int | None) -> dict[str, Any]:
        statement_sql = check(sql, settings.policy)
        cap = min(max_rows or settings.max_rows, settings.max_rows)
        max_bytes = settings.max_result_bytes
        pool = await self._get_pool()
        try:
            async with pool.acquire() as connection, connection.transaction(readonly=True):
                await connection.execute(
                    f"SET LOCAL statement_timeout = {int(settings.timeout_ms)}"
                )
                await connection.execute("SET LOCAL search_path = public")
                statement = await connection.prepare(capped(statement_sql, max_bytes))
                columns = [attribute.name for attribute in statement.get_attributes()]
                cursor = await statement.cursor()
                rows, truncated = await _fetch(cursor, cap, max_bytes)
        except asyncpg.QueryCanceledError:
            raise Timeout(f"the query ran longer than {settings.timeout_ms} ms") from None
        except asyncpg.ReadOnlySQLTransactionError:
            raise InvalidParams("the query tried to write") from None
        except asyncpg.PostgresError as exc:
            if _ROW_TOO_LARGE in str(exc):
                raise InvalidParams(
                    f"a row of the result is larger than {max_bytes} bytes; select fewer or"
                    " shorter columns"
                ) from None
            raise InvalidParams(f"the database refused the query: {exc}") from None
        except (OSError, asyncpg.InterfaceError) as exc:
            await pool.expire_connections()
            raise Unavailable(
                f"the query database connection failed ({type(exc).__name__})"
            ) from exc
        return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": truncated}

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _fetch(cursor: Any, cap: int, max_bytes: int) -> tuple[list[list[Any]], bool]:
    """Rows up to `cap` rows and `max_bytes` encoded bytes; whether more were left out.
    Batches shrink as rows grow, so what is held at once stays near `max_bytes`."""
    rows: list[list[Any]] = []
    total, largest = 0, max_bytes // 10  # until rows are seen, assume large ones
    while True:
        room = max_bytes - total
        batch = await cursor.fetch(max(1, min(100, cap + 1 - len(rows), room // max(largest, 1))))
        if not batch:
            return rows, False
        for record in batch:
            row = [json_safe(value) for value in record]
            size = len(msgpack.packb(row))
            largest = size if not rows else max(largest, size)
            if len(rows) == cap or total + size > max_bytes:
                return rows, True
            rows.append(row)
            total += size


class QueryRunners:
    """The runner for the query database the current secrets name. A reload that changes
    DB_QUERY_URL (or DATABASE_URL, its fallback) gets a runner for the new database; the old
    pool closes once the queries it is running have finished."""

    def __init__(self) -> None:
        self._runner: QueryRunner | None = None
        self._dsn = ""
        self._closing: set[asyncio.Task[None]] = set()

    def for_secrets(self, secrets: Secrets) -> QueryRunner | None:
        name = "DB_QUERY_URL" if secrets.get("DB_QUERY_URL") else "DATABASE_URL"
        dsn = secrets.get(name) or ""
        if dsn != self._dsn or self._runner is None:
            runner = QueryRunner(dsn, name) if dsn else None
            old, self._runner, self._dsn = self._runner, runner, dsn
            if old is not None:
                task = asyncio.get_running_loop().create_task(old.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        return self._runner

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.close()
            self._runner = None
        await asyncio.gather(*self._closing, return_exceptions=True)
