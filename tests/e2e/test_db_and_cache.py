"""The whole stack on PostgreSQL: db_query over MCP (guardian and hub targets), and the
sandbox's tool cache for deterministic calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.mcp_client import assert_fits_schema, mcp_session
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.pg import PostgresServer

ADMIN = "sg_db-and-cache-bootstrap-0123456789"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


def config(fake: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
[LLM_PROVIDER.fake_END]
[DB_QUERY]
tables = "public.products"
max_rows = "50"
[DB_QUERY_END]
"""


@pytest.fixture
def stack(
    stack_factory: Callable[..., Stack],
    fake: FakeOpenAI,
    postgres: PostgresServer,
    pg_database: str,
) -> Stack:
    database = pg_database.rsplit("/", 1)[-1]
    postgres.psql(
        "CREATE TABLE products (id int, name text);"
        "INSERT INTO products SELECT g, 'p' || g FROM generate_series(1, 80) g;",
        database,
    )
    return stack_factory(
        env={"DATABASE_URL": pg_database, "SEALGATE_BOOTSTRAP_TOKEN": ADMIN},
        config_text=config(fake),
    )


async def test_db_query_over_mcp(stack: Stack, postgres: PostgresServer, pg_database: str) -> None:
    # db_query needs a signed-in user even where the gateway could be open.
    async with mcp_session(stack.url, headers=AS_ADMIN) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "db_query" in names
        ok = await client.call_tool(
            "db_query", {"sql": "SELECT id, name FROM products ORDER BY id", "max_rows": 3}
        )
        assert not ok.is_error, ok.content
        assert ok.structured_content["rows"] == [[1, "p1"], [2, "p2"], [3, "p3"]]
        await assert_fits_schema(client, "db_query", ok)
        db_tool = next(t for t in (await client.list_tools()).tools if t.name == "db_query")
        assert db_tool.annotations is not None and db_tool.annotations.read_only_hint is True
        assert db_tool.annotations.destructive_hint is False
        capped = await client.call_tool("db_query", {"sql": "SELECT id FROM products"})
        assert capped.structured_content["row_count"] == 50
        assert capped.structured_content["truncated"]
        refused = await client.call_tool("db_query", {"sql": "DELETE FROM products"})
        assert refused.is_error and "forbidden" in refused.content[0].text
        guardian_tables = await client.call_tool(
            "db_query", {"sql": "SELECT * FROM sealgate.users"}
        )
        assert (
            guardian_tables.is_error and "not on the allowlist" in guardian_tables.content[0].text
        )
        hub = await client.call_tool(
            "db_query", {"sql": "SELECT count(*) FROM tool_cache", "target": "hub"}
        )
        assert not hub.is_error, hub.content
        await assert_fits_schema(client, "db_query", hub)
    database = pg_database.rsplit("/", 1)[-1]
    assert postgres.psql("SELECT count(*) FROM products", database) == "80"
    assert (
        "postgresql:postgresql://postgres" in stack.logs() or "database postgresql" in stack.logs()
    )


async def test_deterministic_calls_are_cached_per_principal(stack: Stack, fake: FakeOpenAI) -> None:
    fake.requests.clear()
    async with mcp_session(stack.url, headers=AS_ADMIN) as client:
        first = await client.call_tool("llm_complete", {"prompt": "same", "temperature": 0})
        second = await client.call_tool("llm_complete", {"prompt": "same", "temperature": 0})
        varied = await client.call_tool("llm_complete", {"prompt": "same", "temperature": 0.7})
        for answer in (first, second, varied):
            await assert_fits_schema(client, "llm_complete", answer)
    assert first.structured_content["text"] == second.structured_content["text"]
    assert second.structured_content.get("cached") is True
    # a cached answer bills nobody, so it carries no receipt (docs/AUDIT.md)
    assert "receipt" in first.structured_content and "receipt" not in second.structured_content
    assert (second.meta or {}).get("sealgate/receipt") is None
    assert "cached" not in first.structured_content and "cached" not in varied.structured_content
    assert len(fake.requests) == 2
