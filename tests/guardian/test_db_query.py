"""db_query is read-only by construction: hostile statements are refused by the parser check,
and what the check lets through runs in a READ ONLY transaction. Against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from guardian.dbquery import QueryRunner, QueryRunners, QuerySettings
from guardian.secrets import Secret, Secrets
from protocol.errors import Forbidden, InvalidParams, RPCError, Timeout
from protocol.pyfun import DbQueryConfig
from protocol.readonly_sql import Policy, check
from tests.pg import PostgresServer

POLICY = Policy.of(["products", "public.orders"])

HOSTILE = [
    "DELETE FROM products",
    "UPDATE products SET price = 0",
    "INSERT INTO products VALUES (99, 'x', 1)",
    "DROP TABLE products",
    "TRUNCATE products",
    "ALTER TABLE products ADD COLUMN x int",
    "CREATE TABLE evil (x int)",
    "GRANT ALL ON products TO PUBLIC",
    "SELECT 1; DELETE FROM products",
    "SELECT * FROM products; DROP TABLE products",
    "WITH gone AS (DELETE FROM products RETURNING *) SELECT * FROM gone",
    "WITH x AS (UPDATE products SET price = 0 RETURNING id) SELECT count(*) FROM x",
    "WITH x AS (INSERT INTO orders VALUES (9, 1) RETURNING *) SELECT * FROM x",
    "SELECT * INTO stolen FROM products",
    "SELECT * FROM products FOR UPDATE",
    "SELECT * FROM products FOR SHARE NOWAIT",
    "COPY products TO STDOUT",
    "COPY (SELECT * FROM products) TO '/tmp/x'",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
    "SELECT pg_sleep(10)",
    "SELECT nextval('products_id_seq')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT query_to_xml('delete from products', true, true, '')",
    "SELECT * FROM sealgate.users",
    "SELECT * FROM pg_catalog.pg_authid",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM secret_table",
    "SELECT * FROM other.products",
    "SELECT * FROM products WHERE id IN (SELECT id FROM sealgate.api_tokens)",
    "SELECT (SELECT password_hash FROM sealgate.users LIMIT 1)",
    "SELECT * FROM products /* harmless? */ ; /* no */ DELETE FROM products",
    "SELECT * FROM products -- comment\n; DELETE FROM products",
    "SELECT public.evil_function()",
    "SELECT pg_catalog.pg_read_binary_file('/etc/passwd')",
    "SELECT current_setting('data_directory')",
    "SELECT * FROM XMLTABLE('/x' PASSING '<x/>' COLUMNS a int)",
    "EXPLAIN ANALYZE DELETE FROM products",
    "DO $$ BEGIN DELETE FROM products; END $$",
    "CALL some_procedure()",
    "SET ROLE postgres",
    "BEGIN; DELETE FROM products; COMMIT",
    "SELECT * FROM \uff50roducts",  # a full-width p: a different, unknown name
    'SELECT * FROM "sealgate"."users"',
    "SELECT * FROM otherdb.public.products",
    "MERGE INTO products USING orders ON true WHEN MATCHED THEN DELETE",
    "SELECT * FROM products, LATERAL pg_ls_dir('/') AS f",
    "SELECT * FROM generate_series(1, 1000000000)",
    # A CTE's name is visible only in its own statement: elsewhere the table of that name is
    # what PostgreSQL reads (issue 11, item 8), and unqualified system names resolve through
    # pg_catalog first.
    "SELECT * FROM secret_table, (WITH secret_table AS (SELECT 1) SELECT * FROM secret_table) x",
    "SELECT * FROM pg_authid, (WITH pg_authid AS (SELECT 1) SELECT * FROM pg_authid) x",
    "SELECT * FROM (WITH secret_table AS (SELECT 1) SELECT 1) a, secret_table",
    "SELECT (SELECT count(*) FROM secret_table), (WITH secret_table AS (SELECT 1) SELECT 1)",
    "SELECT * FROM products WHERE EXISTS (WITH s AS (SELECT 1) SELECT 1) AND id IN"
    " (SELECT 1 FROM s)",
    "(WITH secret_table AS (SELECT 1) SELECT * FROM secret_table) UNION SELECT * FROM secret_table",
    "WITH secret_table AS (SELECT * FROM secret_table) SELECT * FROM secret_table",
    "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, secret_table b2",
    "WITH a AS (SELECT * FROM secret_table) SELECT * FROM a",
    'WITH "Secret_table" AS (SELECT 1) SELECT * FROM secret_table',
    'WITH "PG_AUTHID" AS (SELECT 1) SELECT * FROM pg_authid',
    "SELECT * FROM pg_authid",
    "SELECT * FROM pg_shadow",
    "SELECT * FROM pg_stat_activity",
    "SELECT * FROM pg_temp.products",
    "SELECT * FROM pg_toast.pg_toast_1",
    "SELECT * FROM information_schema.columns",
    'SELECT * FROM "information_schema".tables',
    "SELECT * FROM sqlite_master",
    'SELECT * FROM "PRODUCTS"',
    'SELECT * FROM "PUBLIC".products',
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_statements_are_refused_by_the_parser_check(sql: str) -> None:
    with pytest.raises((Forbidden, InvalidParams)):
        check(sql, POLICY)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id, name FROM products WHERE price > 2 ORDER BY id",
        "select count(*), avg(price), max(name) from public.products",
        "WITH cheap AS (SELECT * FROM products WHERE price < 5) SELECT name FROM cheap",
        "SELECT p.name, o.qty FROM products p JOIN orders o ON o.product_id = p.id",
        "SELECT upper(name), round(price::numeric, 1), date_trunc('day', now()) FROM products",
        "SELECT name FROM products UNION SELECT 'x'",
        "TABLE products",
        "VALUES (1), (2)",
        "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)"
        " SELECT * FROM n",
        "WITH p AS (SELECT * FROM products) SELECT * FROM p WHERE id IN (SELECT id FROM p)",
        "SELECT * FROM (WITH c AS (SELECT id FROM products) SELECT * FROM c) x",
        'SELECT * FROM "products"',
    ],
)
def test_plain_selects_pass(sql: str) -> None:
    check(sql, POLICY)


def test_the_guardian_schema_cannot_be_allowlisted() -> None:
    with pytest.raises(ValueError):
        Policy.of(["sealgate.users"])


@pytest.fixture
async def runner(postgres: PostgresServer, pg_database: str) -> AsyncIterator[QueryRunner]:
    database = pg_database.rsplit("/", 1)[-1]
    postgres.psql(
        "CREATE TABLE products (id int PRIMARY KEY, name text, price float);"
        "INSERT INTO products SELECT g, 'p' || g, g FROM generate_series(1, 250) g;"
        "CREATE TABLE orders (id int, product_id int, qty int);"
        "INSERT INTO orders VALUES (1, 1, 3);"
        "CREATE TABLE secret_table (x text); INSERT INTO secret_table VALUES ('s');",
        database,
    )
    query = QueryRunner(pg_database)
    yield query
    await query.close()


def _settings(**extra: int) -> QuerySettings:
    return QuerySettings(
        DbQueryConfig(tables=("products", "orders"), max_rows=100, **extra)  # type: ignore[arg-type]
    )


async def test_rows_columns_and_the_row_cap(runner: QueryRunner) -> None:
    answer = await runner.run("SELECT id, name, price FROM products ORDER BY id", _settings(), 5)
    assert answer["columns"] == ["id", "name", "price"]
    assert answer["rows"][0] == [1, "p1", 1.0] and answer["row_count"] == 5 and answer["truncated"]
    capped = await runner.run("SELECT id FROM products", _settings(), 10_000)
    assert capped["row_count"] == 100 and capped["truncated"]


async def test_statement_timeout(runner: QueryRunner) -> None:
    slow = "SELECT count(*) FROM products a, products b, products c, products d"
    with pytest.raises(Timeout):
        await runner.run(slow, _settings(statement_timeout_ms=200), None)


async def test_hostile_statements_leave_the_database_unchanged(
    runner: QueryRunner, postgres: PostgresServer, pg_database: str
) -> None:
    database = pg_database.rsplit("/", 1)[-1]
    before = postgres.psql("SELECT count(*), sum(price) FROM products", database)
    for sql in HOSTILE:
        with pytest.raises(RPCError):
            await runner.run(sql, _settings(), None)
    assert postgres.psql("SELECT count(*), sum(price) FROM products", database) == before
    assert (
        postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'stolen'", database) == "0"
    )


@pytest.mark.parametrize("name", ["DB_QUERY_URL", "DATABASE_URL"])
def test_a_malformed_query_url_is_named_as_the_variable_it_came_from(name: str) -> None:
    """db_query reads DB_QUERY_URL, else DATABASE_URL: the refusal names the one it used."""
    secrets = Secrets({name: Secret(value="postgresql://ada:pw@bad host/db", origin="env")})
    with pytest.raises(ValueError, match=f"^{name} names the host 'bad host'") as refused:
        QueryRunners().for_secrets(secrets)
    assert "pw" not in str(refused.value)
