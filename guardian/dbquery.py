"""`db.query`: read-only SQL over the operator's own PostgreSQL tables.

The query must pass `protocol.readonly_sql.check` (one SELECT, allowlisted tables and
functions); it then runs in a READ ONLY transaction with `statement_timeout`, a fixed
`search_path` and a row cap. It connects with DB_QUERY_URL (recommended: a role that can only
read the allowlisted tables) or, when that is unset, DATABASE_URL.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import uuid
from typing import Any

import asyncpg

from guardian.storage.dsn import clean
from protocol.errors import InvalidParams, Timeout, Unavailable
from protocol.pyfun import (
    DEFAULT_QUERY_MAX_ROWS,
    DEFAULT_QUERY_TIMEOUT_MS,
    HARD_QUERY_MAX_ROWS,
    DbQueryConfig,
)
from protocol.readonly_sql import Policy, check

logger = logging.getLogger("sealgate.guardian.dbquery")

DEFAULT_MAX_ROWS = DEFAULT_QUERY_MAX_ROWS
HARD_MAX_ROWS = HARD_QUERY_MAX_ROWS
DEFAULT_TIMEOUT_MS = DEFAULT_QUERY_TIMEOUT_MS


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


class QueryRunner:
    def __init__(self, dsn: str) -> None:
        self.dsn = clean(dsn)
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
        check(sql, settings.policy)
        cap = min(max_rows or settings.max_rows, settings.max_rows)
        pool = await self._get_pool()
        try:
            async with pool.acquire() as connection, connection.transaction(readonly=True):
                await connection.execute(
                    f"SET LOCAL statement_timeout = {int(settings.timeout_ms)}"
                )
                await connection.execute("SET LOCAL search_path = public")
                statement = await connection.prepare(sql)
                columns = [attribute.name for attribute in statement.get_attributes()]
                cursor = await statement.cursor()
                records = await cursor.fetch(cap + 1)
        except asyncpg.QueryCanceledError:
            raise Timeout(f"the query ran longer than {settings.timeout_ms} ms") from None
        except asyncpg.ReadOnlySQLTransactionError:
            raise InvalidParams("the query tried to write") from None
        except asyncpg.PostgresError as exc:
            raise InvalidParams(f"the database refused the query: {exc}") from None
        except (OSError, asyncpg.InterfaceError) as exc:
            await pool.expire_connections()
            raise Unavailable(
                f"the query database connection failed ({type(exc).__name__})"
            ) from exc
        truncated = len(records) > cap
        rows = [[json_safe(value) for value in record] for record in records[:cap]]
        return {"columns": columns, "rows": rows, "row_count": len(rows), "truncated": truncated}

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
