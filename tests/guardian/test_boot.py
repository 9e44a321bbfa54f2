"""How the guardian refuses to boot: one clear line, exit 78, never a traceback or a loop."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from guardian.storage import open_storage
from tests.helpers import EXAMPLE_CONFIG, PYTHON, ROOT, GuardianProcess, Stack, free_port
from tests.pg import PostgresServer

EX_CONFIG = 78


@pytest.fixture
def unstarted() -> Iterator[list[GuardianProcess]]:
    made: list[GuardianProcess] = []
    yield made
    for guardian in made:
        guardian.stop()


def boot(
    made: list[GuardianProcess],
    config_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a guardian to its exit (it must refuse to boot)."""
    guardian = GuardianProcess(config_text, env)
    made.append(guardian)
    return subprocess.run(
        [PYTHON, "-m", "guardian"],
        env=guardian.env,
        cwd=guardian.dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == EX_CONFIG, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "cannot start" in line]
    assert len(errors) == 1 and fragment in errors[0], output


BAD_LIMITS = EXAMPLE_CONFIG.read_text().replace(
    '# max_failed_logins    = "5"', 'max_failed_logins = "five"'
)


def test_a_bad_limit_value_stops_the_boot_with_file_and_line(
    unstarted: list[GuardianProcess],
) -> None:
    line = BAD_LIMITS.splitlines().index('max_failed_logins = "five"') + 1
    result = boot(unstarted, BAD_LIMITS)
    assert_one_clear_line(result, f".pyfun:{line}: max_failed_logins must be a whole number")


def test_config_check_reports_a_bad_limit_value(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bad.pyfun"
    path.write_text('[DB_SYNC]\ntool_cache_ttl_sec = "an hour"\n[DB_SYNC_END]\n')
    result = subprocess.run(
        [PYTHON, "-m", "guardian.ctl", "--socket", "/nonexistent", "config", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"{path}:2: tool_cache_ttl_sec must be a number" in result.stderr
    assert "Traceback" not in result.stderr


def _with_connect_wait(seconds: str) -> str:
    return EXAMPLE_CONFIG.read_text().replace(
        "[HUB_END]", f'db_connect_wait_s = "{seconds}"\n[HUB_END]', 1
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:hunter2-pass@127.0.0.1:notaport/app",
        "mysql://app:hunter2-pass@127.0.0.1/app",
        "postgresql://app:hunter2-pass@127.0.0.1:5432/app?sslmode=bogus",
    ],
)
def test_a_malformed_database_url_exits_78_at_once(
    unstarted: list[GuardianProcess], url: str
) -> None:
    started = time.monotonic()
    result = boot(unstarted, _with_connect_wait("20"), {"DATABASE_URL": url})
    assert time.monotonic() - started < 10
    assert_one_clear_line(result, "database")
    assert "hunter2-pass" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:hunter2-pass@my host:5432/app",  # a space in the host
        "postgresql://app@my host/app",  # no password: the whole value is a secret to redact
        "postgresql://app:hunter2-pass@db,my%20host:5432/app",
    ],
)
def test_a_host_no_server_can_have_exits_78_at_once_naming_it(
    unstarted: list[GuardianProcess], url: str
) -> None:
    """Not 30 s of "cannot reach [REDACTED]": the variable and its host, and exit 78 now."""
    started = time.monotonic()
    result = boot(unstarted, _with_connect_wait("20"), {"DATABASE_URL": url})
    assert time.monotonic() - started < 10
    assert_one_clear_line(result, "DATABASE_URL names the host 'my host'")
    output = result.stdout + result.stderr
    assert "hunter2-pass" not in output and "database try" not in output


def test_the_supervisor_stops_with_78_on_a_host_no_server_can_have() -> None:
    stack = Stack(env={"DATABASE_URL": "postgresql://app:hunter2-pass@my host:5432/app"})
    try:
        started = time.monotonic()
        stack.start(wait=False)
        assert stack.process is not None
        assert stack.process.wait(30) == EX_CONFIG, stack.logs()
        assert time.monotonic() - started < 15
        assert "DATABASE_URL names the host 'my host'" in stack.logs()
        assert "hunter2-pass" not in stack.logs()
    finally:
        stack.cleanup()


def test_a_refused_login_exits_78_at_once(
    unstarted: list[GuardianProcess], postgres: PostgresServer
) -> None:
    started = time.monotonic()
    dsn = postgres.dsn("postgres", user="no_such_role")
    result = boot(unstarted, _with_connect_wait("20"), {"DATABASE_URL": dsn})
    assert time.monotonic() - started < 10
    assert_one_clear_line(result, "no_such_role")


def test_an_unreachable_database_is_retried_for_db_connect_wait_s_then_78(
    unstarted: list[GuardianProcess],
) -> None:
    url = f"postgresql://app@127.0.0.1:{free_port()}/app"  # nothing listens there
    started = time.monotonic()
    result = boot(unstarted, _with_connect_wait("3"), {"DATABASE_URL": url})
    elapsed = time.monotonic() - started
    assert 3 <= elapsed < 20
    assert_one_clear_line(result, "db_connect_wait_s")
    assert "cannot reach DATABASE_URL's host 127.0.0.1 port" in result.stdout + result.stderr
    tries = [
        line for line in (result.stdout + result.stderr).splitlines() if "database try" in line
    ]
    assert len(tries) >= 2, result.stdout + result.stderr


async def test_a_database_coming_up_within_the_wait_is_used(
    pg_database: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    """The guardian started beside its database: refused at first, then connected."""
    postgres.stop()
    try:
        opening = asyncio.create_task(
            open_storage(pg_database, tmp_path / "unused.db", connect_wait_s=30)
        )
        await asyncio.sleep(1.5)
        assert not opening.done()
        await asyncio.to_thread(postgres.start)
        store = await asyncio.wait_for(opening, 30)
        await store.close()
    finally:
        if not postgres.running():
            postgres.start()


async def test_a_database_lost_while_running_is_a_typed_error_then_recovers(
    postgres: PostgresServer, pg_database: str
) -> None:
    from protocol.adminaddr import open_admin_channel
    from protocol.channel import SocketChannel
    from protocol.client import RPCClient
    from protocol.errors import Unavailable

    guardian = GuardianProcess(env={"DATABASE_URL": pg_database}).start()

    async def connect() -> SocketChannel:
        return await open_admin_channel(guardian.admin_path)

    admin = RPCClient(connect, client_name="ctl", call_timeout=60)
    admin.start()
    try:
        assert await admin.wait_connected(5)
        assert await admin.call("users.list", {}) == {"users": []}
        await asyncio.to_thread(postgres.stop)
        try:
            with pytest.raises(Unavailable, match="database is unavailable"):
                await admin.call("users.list", {})
        finally:
            await asyncio.to_thread(postgres.start)
        assert await admin.call("users.list", {}) == {"users": []}
        assert "Traceback" not in guardian.logs(), guardian.logs()
    finally:
        await admin.close()
        guardian.stop()
