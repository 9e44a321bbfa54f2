"""db_query against a hostile caller, on the real stack over PostgreSQL (an owner
connection, the worst case): CTE names never hide a forbidden table or a system catalog,
results are capped in bytes (one huge value fails its own call only, and never reaches the
guardian's memory), the `hub` target is judged by SQLite's own rules, and a reload follows a
changed DB_QUERY_URL."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack, run_ctl
from tests.pg import PostgresServer
from tests.security.common import call_api, provider_block

SECRET_ROW = "customer-secret-4711"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


def make_database(postgres: PostgresServer, label: str) -> str:
    """A database with an allowlisted `products` table labelled `label` and a forbidden
    `customers` table; returns its DSN."""
    name = "t_" + uuid.uuid4().hex[:12]
    dsn = postgres.create_database(name)
    postgres.psql(
        "CREATE TABLE products (id int, name text);"
        f"INSERT INTO products SELECT g, '{label}' || g FROM generate_series(1, 80) g;"
        "CREATE TABLE customers (id int, secret text);"
        f"INSERT INTO customers VALUES (1, '{SECRET_ROW}');",
        name,
    )
    return dsn


ADMIN = "sg_db-query-security-bootstrap-0123"


@pytest.fixture
def stack(stack_factory: Callable[..., Stack], fake: FakeOpenAI, postgres: PostgresServer) -> Stack:
    config = (
        provider_block(fake, keyed=False)
        + '[DB_QUERY]\ntables = "public.products"\nmax_rows = "1000"\n[DB_QUERY_END]\n'
    )
    return stack_factory(
        single_uid=True,
        env={"DATABASE_URL": make_database(postgres, "first-"), "SEALGATE_BOOTSTRAP_TOKEN": ADMIN},
        config_text=config,
    )


def query(stack: Stack, sql: str, **extra: Any) -> tuple[int, Any]:
    # db_query needs a signed-in user, even where the gateway could be open.
    return call_api(stack.url, "db_query", {"sql": sql, **extra}, token=ADMIN)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM customers, (WITH customers AS (SELECT 1) SELECT * FROM customers) x",
        "SELECT rolname, rolpassword FROM pg_authid,"
        " (WITH pg_authid AS (SELECT 1) SELECT * FROM pg_authid) x",
        "SELECT * FROM (WITH customers AS (SELECT 1) SELECT 1) a, customers",
        "(WITH customers AS (SELECT 1) SELECT 1) UNION SELECT id FROM customers",
        "WITH customers AS (SELECT * FROM customers) SELECT * FROM customers",
        'WITH "Customers" AS (SELECT 1) SELECT * FROM customers',
        "SELECT usename, passwd FROM pg_shadow",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM products WHERE id IN (WITH c AS (SELECT 1) SELECT id FROM customers)",
    ],
)
def test_cte_names_never_hide_a_forbidden_table(stack: Stack, sql: str) -> None:
    status, body = query(stack, sql)
    assert status == 403, body
    assert body["error"]["code"] == "forbidden"
    text = json.dumps(body)
    assert SECRET_ROW not in text and "SCRAM" not in text and "md5" not in text


def test_scoped_ctes_still_work(stack: Stack) -> None:
    status, body = query(
        stack,
        "WITH p AS (SELECT * FROM products WHERE id <= 3) SELECT name FROM p"
        " WHERE id IN (SELECT id FROM p) ORDER BY id",
    )
    assert status == 200, body
    assert body["result"]["rows"] == [["first-1"], ["first-2"], ["first-3"]]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_huge_result_fails_only_its_own_call(stack: Stack, fake: FakeOpenAI) -> None:
    # Another caller's stream is running on the same guardian link the whole time.
    fake.event_delay_s = 0.3
    started, outcome = threading.Event(), {}

    def stream() -> None:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        text = ""
        with httpx.stream(
            "POST",
            f"{stack.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=60,
        ) as r:
            for line in r.iter_lines():
                started.set()
                text += line + "\n"
        outcome["text"] = text

    streamer = threading.Thread(target=stream)
    streamer.start()
    assert started.wait(20)

    over_frame = query(stack, "SELECT repeat('x', 9000000)")
    assert over_frame[0] == 400, over_frame
    assert "larger than" in over_frame[1]["error"]["message"]
    many = query(stack, "SELECT id, repeat('x', 100000) AS pad FROM products")
    assert many[0] == 200, many[0]
    assert many[1]["result"]["truncated"] and 0 < many[1]["result"]["row_count"] < 80
    guardian = stack.pid_of("guardian")
    huge = query(stack, "SELECT repeat('x', 150000000)")
    # PostgreSQL refuses to send the row (or runs out of its statement_timeout measuring it).
    assert huge[0] in (400, 504), huge
    assert peak_rss_mb(guardian) < 400, f"guardian peak RSS {peak_rss_mb(guardian):.0f} MB"

    streamer.join(60)
    assert "[DONE]" in outcome.get("text", ""), outcome
    assert '"error"' not in outcome["text"]
    assert stack.pid_of("guardian") == guardian  # nothing restarted
    small = query(stack, "SELECT count(*) FROM products")
    assert small == (200, small[1]) and small[1]["result"]["rows"] == [[80]]


def test_the_hub_target_is_judged_by_sqlite(stack: Stack) -> None:
    for sql in (
        "SELECT * FROM tool_cache /* /* */ , sqlite_master -- */",
        "SELECT * FROM hub_state /* /* */ UNION SELECT name, sql, 0 FROM sqlite_master -- */",
        "SELECT key, value, updated_at FROM hub_state /* /* */ UNION SELECT * FROM"
        " pragma_table_info('hub_state') -- */",
        "SELECT * FROM sqlite_schema",
    ):
        status, body = query(stack, sql, target="hub")
        assert status == 403, (sql, body)
        assert "CREATE TABLE" not in json.dumps(body)
    for sql in (
        "SELECT count(*) FROM tool_cache",
        "SELECT count(*), max(upper(key)) FROM hub_state",
        "WITH k AS (SELECT key FROM hub_state) SELECT count(*) FROM k",
    ):
        status, body = query(stack, sql, target="hub")
        assert status == 200, (sql, body)


def test_a_reload_follows_a_changed_db_query_url(stack: Stack, postgres: PostgresServer) -> None:
    assert query(stack, "SELECT name FROM products WHERE id = 1")[1]["result"]["rows"] == [
        ["first-1"]
    ]
    env_file = stack.dir / ".env"
    env_file.write_text(f"DB_QUERY_URL={make_database(postgres, 'second-')}\n")
    env_file.chmod(0o600)
    guardian = os.stat(f"/proc/{stack.pid_of('guardian')}")
    os.chown(env_file, guardian.st_uid, guardian.st_gid)
    reloaded = run_ctl(stack.runtime / "guardian" / "admin.sock", "config", "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert query(stack, "SELECT name FROM products WHERE id = 1")[1]["result"]["rows"] == [
        ["second-1"]
    ]


def test_a_number_sent_as_a_string_is_used_as_the_number_it_was_checked_as(
    stack: Stack,
) -> None:
    # pydantic accepted "5" for `max_rows: int`, then the unchecked string reached the tool
    # (a 500); the checked value is the one used now.
    status, body = query(stack, "SELECT id FROM products ORDER BY id", max_rows="5")
    assert status == 200, body
    assert body["result"]["rows"] == [[1], [2], [3], [4], [5]]
    status, body = query(stack, "SELECT id FROM products", max_rows="five")
    assert status == 400, body
    assert body["error"]["code"] == "invalid_params" and "max_rows" in body["error"]["message"]
