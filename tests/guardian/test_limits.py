"""Rate limits and budgets: typed refusals, audited, and shared exactly by two guardians on
one PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import BudgetExceeded, Forbidden, RateLimited
from tests.fakes.providers import FakeOpenAI
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess, run_ctl
from tests.pg import PostgresServer


def config(fake: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "costed"
[LLM_PROVIDER.fake_END]
[SEARCH_PROVIDER.brave]
base_url = "{fake.base}/res/v1/web/search"
allow_insecure = "true"
requires_key = "false"
[SEARCH_PROVIDER.brave_END]
[MODEL.costed]
provider = "fake"
cost_input_per_1m = "1000"
cost_output_per_1m = "1000"
[MODEL.costed_END]
[MODEL.free-model]
provider = "fake"
requests_per_min = "2"
[MODEL.free-model_END]
[ROLE.limited]
tools = "llm_complete"
requests_per_min = "4"
[ROLE.limited_END]
[ROLE.budgeted]
monthly_budget_usd = "0.2"
[ROLE.budgeted_END]
[ROLE.searchless]
tools = "llm_complete, summarize"
[ROLE.searchless_END]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


@pytest.fixture
def pair(fake: FakeOpenAI, pg_database: str) -> Iterator[tuple[GuardianProcess, GuardianProcess]]:
    """Two guardians (two replicas) sharing one PostgreSQL database."""
    env = {"DATABASE_URL": pg_database}
    first = GuardianProcess(config_text=config(fake), env=env).start()
    second = GuardianProcess(config_text=config(fake), env=env).start()
    yield first, second
    first.stop()
    second.stop()


def ctl(guardian: GuardianProcess, *args: str, stdin: str = "") -> str:
    done = run_ctl(guardian.admin_path, *args, stdin=stdin)
    done.check_returncode()
    return done.stdout.strip()


@pytest.fixture
async def clients(
    pair: tuple[GuardianProcess, GuardianProcess],
) -> AsyncIterator[list[RPCClient]]:
    made = []
    for guardian in pair:

        async def connect(path: str = str(guardian.socket_path)) -> SocketChannel:
            return await open_unix_channel(path)

        client = RPCClient(connect, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
        client.start()
        assert await client.wait_connected(5)
        made.append(client)
    yield made
    for client in made:
        await client.close()


def params(token: str, **extra: Any) -> dict[str, Any]:
    return {
        "caller": {"ip": "127.0.0.1", "user_agent": "t", "credential": token},
        "tool": "llm_complete",
        "prompt": "hi",
        **extra,
    }


def token_for(guardian: GuardianProcess, user: str, role: str) -> str:
    ctl(guardian, "users", "add", user, "--role", role, stdin="a long password\n")
    return ctl(guardian, "tokens", "issue", "--user", user)


async def test_rate_limit_is_shared_exactly_by_two_replicas(
    pair: tuple[GuardianProcess, GuardianProcess], clients: list[RPCClient]
) -> None:
    token = token_for(pair[0], "limited-user", "limited")
    for index in range(4):
        await clients[index % 2].call("llm.complete", params(token))
    with pytest.raises(RateLimited) as refused:
        await clients[0].call("llm.complete", params(token))
    assert 1 <= refused.value.data["retry_after_s"] <= 60
    with pytest.raises(RateLimited):
        await clients[1].call("llm.complete", params(token))


async def test_budget_is_shared_exactly_by_two_replicas(
    pair: tuple[GuardianProcess, GuardianProcess], clients: list[RPCClient]
) -> None:
    """Each call reserves its maximum (here about 0.08 USD) and costs 0.016 USD: calls go
    through, on either replica, while the spend plus one reservation fits the budget."""
    token = token_for(pair[1], "budget-user", "budgeted")
    first = await clients[0].call("llm.complete", params(token, max_tokens=6))
    assert first["cost_usd"] == pytest.approx(0.016)
    done = 1
    with pytest.raises(BudgetExceeded, match="monthly budget") as refused:
        while done < 20:
            await asyncio.sleep(0.3)  # the ledger settles the shared counter (a batch behind)
            await clients[done % 2].call("llm.complete", params(token, max_tokens=6))
            done += 1
    data = refused.value.data
    assert data["spent_usd"] == pytest.approx(0.016 * done)
    assert data["spent_usd"] + data["reserve_usd"] > data["budget_usd"] == 0.2
    assert data["spent_usd"] - 0.016 + data["reserve_usd"] <= 0.2  # the last one did fit
    for client in clients:
        with pytest.raises(BudgetExceeded, match="monthly budget"):
            await client.call("llm.complete", params(token, max_tokens=6))


async def test_a_budgeted_principal_may_only_use_costed_models(
    pair: tuple[GuardianProcess, GuardianProcess], clients: list[RPCClient]
) -> None:
    token = token_for(pair[0], "frugal", "budgeted")
    with pytest.raises(Forbidden, match="no cost entry"):
        await clients[0].call("llm.complete", params(token, model="free-model"))


async def test_per_model_requests_per_minute(
    pair: tuple[GuardianProcess, GuardianProcess], clients: list[RPCClient]
) -> None:
    token = token_for(pair[0], "modeler", "user")
    for index in range(2):
        await clients[index].call("llm.complete", params(token, model="free-model"))
    with pytest.raises(RateLimited, match="model free-model"):
        await clients[0].call("llm.complete", params(token, model="free-model"))


async def test_tool_not_in_role_is_forbidden_and_audited(
    pair: tuple[GuardianProcess, GuardianProcess],
    clients: list[RPCClient],
    postgres: PostgresServer,
    pg_database: str,
) -> None:
    token = token_for(pair[0], "nosearch", "searchless")
    with pytest.raises(Forbidden, match="may not use tool 'web_search'"):
        await clients[1].call(
            "search.web", {"caller": params(token)["caller"], "tool": "web_search", "query": "x"}
        )
    database = pg_database.rsplit("/", 1)[-1]
    audited = postgres.psql(
        "SELECT principal || ' ' || outcome FROM sealgate.audit WHERE action = 'search.web'",
        database,
    )
    assert audited == "nosearch forbidden"
