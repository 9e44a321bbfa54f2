"""Limits and money across three replicas, through the load balancer (issue 29 item 5): a
1 USD budget holds against 40 parallel calls spread over the replicas, a per-minute limit of
10 lets exactly 10 through, and a replica killed mid-stream leaves no open reservation once
its replacement has started (the cut call is billed at its maximum, as `interrupted`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeAnthropic
from tests.helpers import children_of
from tests.pg import PostgresServer
from tests.replicas.cluster import Cluster, running_cluster
from tests.security.stackdb import user_with_token

BUDGET = 1.0
CALLS = 40
PER_MINUTE = 10
# the fake reports 12 input and 7 output tokens: 0.012 + 0.07 = 0.082 USD a call
CALL_COST = (12 * 1000 + 7 * 10_000) / 1e6

CONFIG = f"""
[HUB]
max_streams_per_principal = "200"
[HUB_END]
[LLM_PROVIDER.anthropic]
base_url = "{{base}}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "dear-model"
timeout_sec = "30"
[LLM_PROVIDER.anthropic_END]
[MODEL.dear-model]
provider = "anthropic"
cost_input_per_1m = "1000"
cost_output_per_1m = "10000"
max_output_tokens = "64"
[MODEL.dear-model_END]
[ROLE.capped]
monthly_budget_usd = "{BUDGET}"
[ROLE.capped_END]
[ROLE.limited]
requests_per_min = "{PER_MINUTE}"
[ROLE.limited_END]
"""
BODY = {"model": "dear-model", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(name="anthropic", reply_text="a dear answer")
    server.start()
    yield server
    server.stop()


class Setup:
    def __init__(self, cluster: Cluster, postgres: PostgresServer, database: str) -> None:
        self.cluster = cluster
        self.postgres = postgres
        self.database = database

    def sql(self, query: str) -> str:
        return self.postgres.psql(query, database=self.database)


@pytest.fixture(scope="module")
def setup(postgres: PostgresServer, fake: FakeAnthropic) -> Iterator[Setup]:
    with running_cluster(postgres, CONFIG.format(base=fake.base), {}) as (cluster, name):
        yield Setup(cluster, postgres, name)


async def parallel(url: str, token: str, count: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        return await asyncio.gather(
            *(client.post(f"{url}/v1/chat/completions", json=BODY) for _ in range(count))
        )


def test_a_budget_holds_over_three_replicas(setup: Setup, fake: FakeAnthropic) -> None:
    cluster = setup.cluster
    token = user_with_token(cluster.stacks[0], "spender", "capped")
    assert cluster.balancer is not None
    before = cluster.balancer.served()
    fake.default = Behaviour(hang_s=0.5)  # every call is in flight at once
    try:
        answers = asyncio.run(parallel(cluster.url, token, CALLS))
    finally:
        fake.default = Behaviour()
    after = cluster.balancer.served()
    assert all(after[name] - before[name] >= CALLS // 4 for name in after), (before, after)
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 429}, statuses
    time.sleep(0.5)  # the ledger writes a batch behind
    spent = float(
        setup.sql(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM sealgate.usage u JOIN sealgate.users s"
            " ON s.id = u.user_id WHERE s.name = 'spender'"
        )
    )
    ok = statuses.count(200)
    assert spent == pytest.approx(CALL_COST * ok)
    # at most one call's settle difference over the budget (here: none, the real cost of a
    # call is below the maximum it reserved)
    assert spent <= BUDGET + CALL_COST
    assert ok >= int(BUDGET / (CALL_COST * 2))  # a good part of the budget was usable
    assert setup.sql("SELECT COUNT(*) FROM sealgate.reservations") == "0"


def test_a_per_minute_limit_lets_exactly_ten_through(setup: Setup) -> None:
    cluster = setup.cluster
    token = user_with_token(cluster.stacks[0], "limited", "limited")
    answers = asyncio.run(parallel(cluster.url, token, 2 * PER_MINUTE + 5))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == PER_MINUTE, statuses
    assert statuses.count(429) == PER_MINUTE + 5


def kill_replica(pid: int) -> None:
    """SIGKILL the supervisor and its children at once: nothing is flushed, nothing settles."""
    for child in [*children_of(pid), pid]:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_replica_killed_mid_stream_leaves_no_reservation(
    setup: Setup, fake: FakeAnthropic
) -> None:
    cluster = setup.cluster
    token = user_with_token(cluster.stacks[0], "streamer", "user")
    fake.default = Behaviour(stream_hold=True)

    def stream() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the cut stream fails, as it should
            httpx.post(
                f"{cluster.url}/v1/chat/completions",
                json={**BODY, "stream": True},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )

    client = threading.Thread(target=stream, daemon=True)
    client.start()
    try:
        owner = ""
        deadline = time.monotonic() + 15
        while not owner and time.monotonic() < deadline:
            owner = setup.sql("SELECT owner FROM sealgate.reservations")
            time.sleep(0.05)
        assert owner, "no reservation for the call in flight"
        victim = next(s for s in cluster.stacks if owner.endswith(str(s.runtime)))
        assert victim.process is not None
        kill_replica(victim.process.pid)
        victim.process.wait(10)
        client.join(30)
    finally:
        fake.default = Behaviour()
    assert setup.sql("SELECT COUNT(*) FROM sealgate.reservations") == "1"  # left open
    victim.start()  # the replacement: the same replica (its runtime directory) again
    assert cluster.balancer is not None
    cluster.balancer.wait_up(3)
    assert setup.sql("SELECT COUNT(*) FROM sealgate.reservations") == "0"
    outcomes = setup.sql(
        "SELECT outcome FROM sealgate.usage u JOIN sealgate.users s ON s.id = u.user_id"
        " WHERE s.name = 'streamer'"
    )
    assert outcomes == "interrupted"
