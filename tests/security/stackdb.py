"""The guardian database of a running stack, on SQLite or PostgreSQL, for the money and
login attacks: one fixture picks the backend, and the rows are read straight from the store."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import GuardianProcess, Stack, run_ctl
from tests.pg import PostgresServer

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Backend:
    """Where a stack keeps its guardian database, and how a test reads it."""

    name: str
    postgres: PostgresServer | None = None
    dsn: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.dsn} if self.dsn else {}

    def rows(self, where: Stack | GuardianProcess, sql: str) -> list[dict[str, Any]]:
        """Rows of a query whose tables are written `{s}usage`, `{s}audit`, ..."""
        if self.postgres is None:
            path = where.runtime / "guardian" / "guardian.db"
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.row_factory = sqlite3.Row
                return [dict(row) for row in db.execute(sql.format(s=""))]
        database = self.dsn.rsplit("/", 1)[-1]
        query = f"SELECT COALESCE(json_agg(q), '[]') FROM ({sql.format(s='sealgate.')}) q"
        return json.loads(self.postgres.psql(query, database))


def make_backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "postgresql":
        return Backend(
            "postgresql",
            request.getfixturevalue("postgres"),
            request.getfixturevalue("pg_database"),
        )
    return Backend("sqlite")


def ctl(where: Stack | GuardianProcess, *args: str, stdin: str = "") -> str:
    done = run_ctl(where.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
    if done.returncode != 0:
        raise AssertionError(f"ctl {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def user_with_token(where: Stack | GuardianProcess, name: str, role: str) -> str:
    ctl(where, "users", "add", name, "--role", role, stdin="a long enough password\n")
    return ctl(where, "tokens", "issue", "--user", name)


StackFactory = Callable[..., Stack]
