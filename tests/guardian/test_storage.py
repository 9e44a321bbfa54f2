"""One storage suite, run on both backends: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from guardian.storage import Storage, open_storage
from guardian.storage.base import (
    AuditEntry,
    LedgerEntry,
    Reservation,
    StorageError,
    StorageUnreachable,
    UsageRow,
)
from guardian.storage.dsn import clean
from guardian.storage.schema import MIGRATIONS
from tests.pg import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        dsn = request.getfixturevalue("pg_database")
        store = await open_storage(dsn, tmp_path / "unused.db")
    yield store
    await store.close()


async def test_migrations_are_idempotent(storage: Storage) -> None:
    assert await storage.migrate() == len(MIGRATIONS)
    assert await storage.migrate() == len(MIGRATIONS)


async def test_users(storage: Storage) -> None:
    assert await storage.create_user("ada", "hash1", "user")
    assert not await storage.create_user("ada", "hash2", "admin")  # no silent overwrite
    assert await storage.count_users() == 1
    assert await storage.add_failed_login("ada") == 1
    assert await storage.add_failed_login("ada") == 2
    until = time.time() + 60
    assert await storage.set_lock("ada", until, by_operator=False)
    user = await storage.get_user("ada")
    assert user is not None and user["locked_until"] == pytest.approx(until)
    assert await storage.set_lock("ada", None, by_operator=False)
    user = await storage.get_user("ada")
    assert user is not None and user["failed_logins"] == 0 and user["locked_until"] is None
    assert await storage.set_role("ada", "admin") and await storage.set_password("ada", "h3")
    assert [u["name"] for u in await storage.list_users()] == ["ada"]
    assert await storage.delete_user("ada") and await storage.get_user("ada") is None


async def test_tokens_and_sessions(storage: Storage) -> None:
    bob = await storage.create_user("bob", None, "user")
    assert bob is not None
    await storage.create_token("tok1", "bob", "h" * 64, "laptop", None, bob)
    found = await storage.find_token("h" * 64)
    assert found is not None and found["user_name"] == "bob" and found["revoked_at"] is None
    assert [t["id"] for t in await storage.list_tokens("bob")] == ["tok1"]
    assert await storage.revoke_token("tok1", None)
    assert not await storage.revoke_token("tok1", None)
    await storage.create_session("s" * 64, "bob", "127.0.0.1", "ua", time.time() + 60, bob)
    session = await storage.get_session("s" * 64)
    assert session is not None and session["ip"] == "127.0.0.1"
    assert len(await storage.list_sessions()) == 1
    assert await storage.revoke_sessions("bob", None) == 1
    assert await storage.get_session("s" * 64) is None


async def test_usage_audit_and_counters(storage: Storage) -> None:
    now = time.time()
    rows = [
        UsageRow(
            ts=now,
            principal="p",
            tool="t",
            provider="x",
            model="m",
            input_tokens=1,
            output_tokens=2,
            cost_usd=0.5,
            latency_ms=1.0,
            outcome="ok",
            fallback_path="[]",
        )
        for _ in range(3)
    ]
    await storage.add_usage(rows)
    assert await storage.spend_since(now - 1) == {"p": 1.5}
    await storage.add_audit("p", "login", "refused", "10.0.0.1", "bad password")
    (entry,) = await storage.audit_since(now - 1)
    assert entry["action"] == "login" and entry["ip"] == "10.0.0.1"
    results = await asyncio.gather(*(storage.add_to_counter("k", 100.0, 1) for _ in range(20)))
    assert sorted(results) == [float(n) for n in range(1, 21)]  # atomic increments
    assert await storage.read_counter("k", 100.0) == 20
    await storage.prune_counters(200.0)
    assert await storage.read_counter("k", 100.0) == 0


def test_hosted_dsn_quirks() -> None:
    hosted = clean("postgresql://u:p@db.example.com/app?statement_timeout=5000&keepalives=1")
    assert "statement_timeout" not in hosted.dsn and "keepalives" not in hosted.dsn
    assert "sslmode=require" in hosted.dsn and hosted.ssl_raised
    assert hosted.redacted() == "postgresql://u:***@db.example.com/app"
    kept = clean("postgresql://u:p@db.example.com/app?sslmode=verify-full")
    assert "sslmode=verify-full" in kept.dsn and not kept.ssl_raised
    local = clean("postgresql://u@127.0.0.1:5432/app")
    assert "sslmode" not in local.dsn


@pytest.mark.parametrize(
    ("dsn", "where"),
    [
        ("postgresql://u:p@db.example.com:6543/app", "host db.example.com port 6543"),
        ("postgresql://u@127.0.0.1/app", "host 127.0.0.1"),
        ("postgresql://u:p@[::1]:5432/app", "host ::1 port 5432"),
        ("postgresql://u:p@db_1-replica/app", "host db_1-replica"),
        ("postgresql:///app?host=/run/postgresql", "host /run/postgresql"),
        ("postgresql://u:p@/app", "host the local socket"),
    ],
)
def test_hosts_a_server_can_have_are_kept_and_named_without_credentials(
    dsn: str, where: str
) -> None:
    assert clean(dsn).where() == where


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:secret-pw@my host:5432/app",
        "postgresql://u:secret-pw@my%20host/app",
        'postgresql://u:secret-pw@bad"host/app',
        "postgresql:///app?host=my host",
    ],
)
def test_a_host_no_server_can_have_is_refused_naming_the_variable(dsn: str) -> None:
    with pytest.raises(ValueError, match="DATABASE_URL names the host") as refused:
        clean(dsn)
    assert "secret-pw" not in str(refused.value)
    with pytest.raises(ValueError, match=r"^DB_QUERY_URL names the host"):
        clean(dsn, "DB_QUERY_URL")


async def test_pool_survives_terminated_connections_and_a_restart(
    postgres: PostgresServer, pg_database: str, tmp_path: Path
) -> None:
    store = await open_storage(pg_database, tmp_path / "unused.db")
    try:
        await store.create_user("carol", None, "user")
        database = pg_database.rsplit("/", 1)[-1]
        postgres.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        assert await store.count_users() == 1
        postgres.restart()
        assert await store.count_users() == 1
    finally:
        await store.close()


def _usage(principal: str, ts: float, cost: float | None = 0.5, **kw: object) -> UsageRow:
    fields: dict[str, object] = {
        "ts": ts,
        "principal": principal,
        "tool": "chat",
        "provider": "x",
        "model": "m",
        "input_tokens": 1,
        "output_tokens": 2,
        "cost_usd": cost,
        "latency_ms": 1.0,
        "outcome": "ok",
        "fallback_path": "[]",
    }
    fields.update(kw)
    return UsageRow(**fields)  # type: ignore[arg-type]


async def test_guardians_starting_together_migrate_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Four guardians on one empty database: each migration is applied exactly once."""
    for round_ in range(3):
        dsn = postgres.create_database(f"race_{round_}_{time.time_ns()}")
        stores = await asyncio.gather(
            *(open_storage(dsn, tmp_path / "unused.db") for _ in range(4))
        )
        try:
            rows = await stores[0].fetch("SELECT version FROM sealgate.schema_version")
            assert sorted(r["version"] for r in rows) == list(range(1, len(MIGRATIONS) + 1))
        finally:
            for store in stores:
                await store.close()


async def test_sqlite_guardians_starting_together_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "guardian.db"
    stores = await asyncio.gather(*(open_storage(None, path) for _ in range(4)))
    try:
        rows = await stores[0].fetch("SELECT version FROM schema_version")
        assert sorted(r["version"] for r in rows) == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for store in stores:
            await store.close()


async def test_transaction_commits_together_or_not_at_all(storage: Storage) -> None:
    async with storage.transaction() as tx:
        await tx.execute(
            tx.q("INSERT INTO {s}users (name, role, created_at) VALUES (?, ?, ?)"), "a", "user", 1.0
        )
        await tx.execute(
            tx.q("INSERT INTO {s}users (name, role, created_at) VALUES (?, ?, ?)"), "b", "user", 1.0
        )
        assert (await tx.fetchrow(tx.q("SELECT COUNT(*) AS n FROM {s}users")))["n"] == 2
    assert await storage.count_users() == 2

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with storage.transaction() as tx:
            await tx.execute(tx.q("DELETE FROM {s}users WHERE name = ?"), "a")
            raise Boom
    assert await storage.count_users() == 2  # the delete was rolled back

    from guardian.storage.base import StorageError

    with pytest.raises(StorageError):
        async with storage.transaction() as tx:
            await tx.execute(tx.q("DELETE FROM {s}users WHERE name = ?"), "a")
            await tx.execute(  # duplicate primary key: the whole transaction fails
                tx.q("INSERT INTO {s}users (name, role, created_at) VALUES (?, ?, ?)"),
                "b",
                "user",
                1.0,
            )
    assert await storage.count_users() == 2


async def test_other_writes_never_land_inside_a_transaction(storage: Storage) -> None:
    """A statement from another task while a transaction is open is not committed or rolled
    back with it."""
    entered = asyncio.Event()

    async def other() -> None:
        await entered.wait()
        assert await storage.create_user("other", None, "user")

    async def failing_transaction() -> None:
        async with storage.transaction() as tx:
            await tx.execute(
                tx.q("INSERT INTO {s}users (name, role, created_at) VALUES (?, ?, ?)"),
                "inside",
                "user",
                1.0,
            )
            entered.set()
            await asyncio.sleep(0.2)
            raise LookupError("roll back")

    results = await asyncio.gather(failing_transaction(), other(), return_exceptions=True)
    assert isinstance(results[0], LookupError) and results[1] is None
    assert await storage.get_user("inside") is None
    assert await storage.get_user("other") is not None


async def test_delete_user_is_one_transaction(storage: Storage) -> None:
    dora = await storage.create_user("dora", None, "user")
    assert dora is not None
    await storage.create_token("t1", "dora", "d" * 64, "", None, dora)
    await storage.create_session("x" * 64, "dora", "127.0.0.1", "ua", time.time() + 60, dora)
    assert await storage.delete_user("dora")
    assert await storage.find_token("d" * 64) is None
    assert await storage.get_session("x" * 64) is None


async def test_a_usage_batch_written_twice_counts_once(storage: Storage) -> None:
    """The ledger retries a batch whose write may have committed: idempotency keys."""
    now = time.time()
    batch = [_usage("p", now) for _ in range(3)]
    await storage.add_usage(batch)
    await storage.add_usage(batch)
    assert await storage.spend_since(now - 1) == {"p": 1.5}


async def test_audit_filters_run_before_the_limit(storage: Storage) -> None:
    for _ in range(30):
        await storage.add_audit("alice", "login", "ok", tool="chat")
    await storage.add_audit("bob", "login", "ok", tool="search")
    (bob,) = await storage.audit_since(0, limit=10, user="bob")
    assert bob["principal"] == "bob"
    (search,) = await storage.audit_since(0, limit=10, tool="search")
    assert search["principal"] == "bob"
    assert len(await storage.audit_since(0, limit=10, user="alice", tool="chat")) == 10
    assert await storage.audit_since(0, limit=10, user="alice", tool="search") == []


async def test_token_listing_filters_in_sql(storage: Storage) -> None:
    for user in ("u1", "u2"):
        user_id = await storage.create_user(user, None, "user")
        await storage.create_token(f"tok-{user}", user, user * 32, "", None, user_id or "")
    assert [t["id"] for t in await storage.list_tokens("u2")] == ["tok-u2"]
    assert len(await storage.list_tokens()) == 2


async def test_usage_report_aggregates_in_sql(storage: Storage) -> None:
    day = 1_700_000_000.0  # 2023-11-14 UTC
    await storage.add_usage(
        [
            _usage("ann", day, 0.25),
            _usage("ann", day + 86_400, None, outcome="timeout", model="m2"),
            _usage("ben", day, 1.0, input_tokens=10),
            _usage("old", 5.0, 9.0),
        ]
    )
    by_user = await storage.usage_report(day - 1, "user")
    assert by_user == [
        {
            "key": "ann",
            "user_id": "",
            "calls": 2,
            "errors": 1,
            "input_tokens": 2,
            "output_tokens": 4,
            "cost_usd": 0.25,
        },
        {
            "key": "ben",
            "user_id": "",
            "calls": 1,
            "errors": 0,
            "input_tokens": 10,
            "output_tokens": 2,
            "cost_usd": 1.0,
        },
    ]
    by_day = await storage.usage_report(day - 1, "day")
    assert [(r["key"], r["calls"]) for r in by_day] == [("2023-11-14", 2), ("2023-11-15", 1)]
    by_model = await storage.usage_report(0, "model")
    assert [(r["key"], r["calls"]) for r in by_model] == [("m", 3), ("m2", 1)]
    with pytest.raises(ValueError, match="grouped by"):
        await storage.usage_report(0, "password")


async def test_usage_by_user_keeps_two_users_of_one_name_apart(storage: Storage) -> None:
    """A deleted user and a new user of the same name are two people: two rows."""
    day = 1_700_000_000.0
    await storage.add_usage(
        [
            _usage("ada", day, 1.0, user_id="u_" + "1" * 32),
            _usage("ada", day, 2.0, user_id="u_" + "2" * 32),
            _usage("ada", day, 4.0, user_id="u_" + "2" * 32),
        ]
    )
    rows = await storage.usage_report(day - 1, "user")
    assert [(r["key"], r["user_id"], r["calls"], r["cost_usd"]) for r in rows] == [
        ("ada", "u_" + "1" * 32, 1, 1.0),
        ("ada", "u_" + "2" * 32, 2, 6.0),
    ]


async def test_sqlite_refuses_storage_calls_inside_its_own_transaction(tmp_path: Path) -> None:
    store = await open_storage(None, tmp_path / "guardian.db")
    try:
        with pytest.raises(RuntimeError, match=r"inside storage\.transaction"):
            async with store.transaction():
                await store.count_users()  # would deadlock on the held connection
    finally:
        await store.close()


async def test_lost_connection_retries_only_what_cannot_run_twice(
    pg_database: str, tmp_path: Path
) -> None:
    """A write whose connection drops mid-statement may have committed: not retried."""
    import asyncpg

    from guardian.storage.base import StorageError
    from guardian.storage.postgres import PostgresStorage

    store = await open_storage(pg_database, tmp_path / "unused.db")
    assert isinstance(store, PostgresStorage)
    calls = 0

    async def drops_once(connection: asyncpg.Connection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation")
        return 1

    try:
        with pytest.raises(StorageError, match="may or may not"):
            await store._with_retry(drops_once, idempotent=False)
        assert calls == 1
        calls = 0
        assert await store._with_retry(drops_once, idempotent=True) == 1
        assert calls == 2
    finally:
        await store.close()


def _held(amount: float, *, shared: bool, owner: str = "me", created: float = 0.0) -> Reservation:
    return Reservation(
        id=uuid.uuid4().hex,
        principal="p",
        window_start=1000.0,
        amount=amount,
        created_at=created or time.time(),
        owner=owner,
        shared=shared,
        tool="chat",
        provider="x",
        model="m",
    )


async def test_reservations_hold_the_shared_counter_and_settle_once(storage: Storage) -> None:
    """Reserve within the budget only; a ledger batch written twice settles once."""
    first, second = _held(0.6, shared=True), _held(0.6, shared=True)
    assert await storage.reserve(first, 1.0) is None
    assert await storage.reserve(second, 1.0) == pytest.approx(0.6)  # refused: 1.2 > 1.0
    assert await storage.read_counter("spend:p", 1000.0) == pytest.approx(0.6)
    audit = AuditEntry(principal="p", action="llm.stream", outcome="cancelled", detail="cut")
    entry = LedgerEntry(
        usage=_usage("p", time.time(), 0.25, outcome="cancelled"), reservation=first, audit=audit
    )
    await storage.write_ledger([entry])
    await storage.write_ledger([entry])  # a retry after an unconfirmed commit
    assert await storage.read_counter("spend:p", 1000.0) == pytest.approx(0.25)
    assert await storage.fetch(storage.q("SELECT * FROM {s}reservations")) == []
    assert len(await storage.audit_since(0, user="p")) == 1
    assert await storage.spend_since(0) == {"p": 0.25}


async def test_leftover_reservations_are_billed_in_full_and_audited(storage: Storage) -> None:
    mine, old, live = (
        _held(0.4, shared=False),
        _held(0.3, shared=False, owner="gone", created=time.time() - 7200),
        _held(0.2, shared=False, owner="alive"),
    )
    for held in (mine, old, live):
        assert await storage.reserve(held, None) is None
    settled = await storage.settle_leftover_reservations("me", time.time() - 3600)
    assert sorted(r["id"] for r in settled) == sorted([mine.id, old.id])
    assert await storage.spend_since(0) == {"p": pytest.approx(0.7)}
    (left,) = await storage.fetch(storage.q("SELECT id FROM {s}reservations"))
    assert left["id"] == live.id
    audits = await storage.audit_since(0, user="p")
    assert [a["action"] for a in audits] == ["budget.settle", "budget.settle"]
    assert await storage.settle_leftover_reservations("me", time.time() - 3600) == []


async def test_a_connection_the_pool_cannot_reset_does_not_hide_the_storage_error(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In an outage, handing a broken connection back (the pool resets it) raised asyncpg's
    own error from the transaction's `finally`, replacing the `StorageError` the ledger writer
    handles: the writer then died with a traceback (found by the PostgreSQL outage soak)."""
    import asyncpg

    from guardian.storage.base import StorageError
    from guardian.storage.postgres import PostgresStorage

    store = await open_storage(pg_database, tmp_path / "unused.db")
    assert isinstance(store, PostgresStorage)
    release = asyncpg.pool.Pool.release

    async def release_fails(
        pool: asyncpg.pool.Pool, connection: asyncpg.Connection, **kwargs: object
    ) -> None:
        await release(pool, connection)  # the connection goes back; then the reset "fails"
        raise asyncpg.exceptions.ConnectionDoesNotExistError("reset on a dead connection")

    try:
        monkeypatch.setattr(asyncpg.pool.Pool, "release", release_fails)
        with pytest.raises(StorageError, match="no_such_table"):
            async with store.transaction() as tx:
                await tx.execute("SELECT * FROM no_such_table")
        async with store.transaction() as tx:  # and a good transaction still commits
            await tx.execute("SELECT 1")
    finally:
        monkeypatch.undo()
        await store.close()


async def test_a_call_start_is_written_unflushed_and_nothing_else_is(pg_database: str) -> None:
    """PostgreSQL commits a call's start without waiting for its WAL flush; the setting is
    that statement's alone, so the next write on the same connection is flushed again."""
    from guardian.storage.postgres import PostgresStorage

    store = PostgresStorage(pg_database, min_size=1, max_size=1)
    await store.open()
    try:
        await store.migrate()
        held = _held(0.0, shared=True)
        assert await store.reserve(held, None) is None
        (row,) = await store.fetch(store.q("SELECT * FROM {s}reservations"))
        assert row["id"] == held.id and row["counted"] == 1
        setting = await store.fetchrow("SELECT current_setting('synchronous_commit') AS v")
        assert setting is not None and setting["v"] == "on"
    finally:
        await store.close()


async def test_a_server_without_tls_is_named_at_once_not_retried_as_unreachable() -> None:
    """A server that answers the TLS request with 'N' will not change its mind: the start
    stops at once, saying what to change, instead of retrying as if it were away."""
    requests: list[bytes] = []

    async def no_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readexactly(8))  # PostgreSQL's SSLRequest
        writer.write(b"N")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(no_tls, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(StorageError, match="offers no TLS") as refused:
            await open_storage(
                f"postgresql://ada:pw@127.0.0.1:{port}/db?sslmode=require",
                Path("/nonexistent"),
                connect_wait_s=20,
            )
    finally:
        server.close()
    assert time.monotonic() - started < 5 and requests
    assert "pw" not in str(refused.value)
    assert not isinstance(refused.value, StorageUnreachable)
