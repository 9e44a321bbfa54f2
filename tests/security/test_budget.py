"""A budget holds under any concurrency, on one guardian and on two sharing PostgreSQL.

The attack: 30 parallel calls against a $1 budget all succeeded and spent $30, because spend
was added after a call ended and the check only looked at what had ended. Each call now
reserves its maximum cost (input bounded from the request's bytes, output from max_tokens)
in storage before it leaves and settles to the real cost after, so spend passes the budget
only by what a call cost beyond its own maximum (nothing, here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeAnthropic, FakeOpenAI
from tests.helpers import Stack
from tests.security.stackdb import BACKENDS, Backend, make_backend, user_with_token

BUDGET = 5.0
# the fake reports 12 input and 7 output tokens: 0.012 + 0.7 = 0.712 USD a call
CALL_COST = (12 * 1000 + 7 * 100_000) / 1e6
CALLS = 30


def config(fake: FakeAnthropic) -> str:
    return f"""
[LLM_PROVIDER.anthropic]
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "dear-model"
timeout_sec = "20"
[LLM_PROVIDER.anthropic_END]
[MODEL.dear-model]
provider = "anthropic"
cost_input_per_1m = "1000"
cost_output_per_1m = "100000"
max_output_tokens = "64"
[MODEL.dear-model_END]
[ROLE.capped]
monthly_budget_usd = "{BUDGET}"
[ROLE.capped_END]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(name="anthropic", reply_text="a dear answer")
    server.default = Behaviour(hang_s=0.5)  # every call is in flight at once
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


async def spend(urls: list[str], token: str) -> list[httpx.Response]:
    """CALLS chat completions at once, spread over the given sandboxes."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {"model": "dear-model", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=60, headers=headers) as client:
        return await asyncio.gather(
            *(
                client.post(f"{urls[n % len(urls)]}/v1/chat/completions", json=body)
                for n in range(CALLS)
            )
        )


def check(answers: list[httpx.Response], backend: Backend, stack: Stack) -> None:
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) == {200, 429}, [a.text for a in answers if a.status_code not in (200, 429)]
    refused = [a.json() for a in answers if a.status_code == 429]
    assert all(r["error"]["type"] == "insufficient_quota" for r in refused)
    rows = backend.rows(stack, "SELECT outcome, cost_usd FROM {s}usage")
    ok = [row for row in rows if row["outcome"] == "ok"]
    assert len(ok) == statuses.count(200) >= 1
    spent = sum(row["cost_usd"] or 0.0 for row in rows)
    assert spent == pytest.approx(CALL_COST * len(ok))
    assert spent <= BUDGET  # the real cost never passes the reserved maximum here
    assert backend.rows(stack, "SELECT * FROM {s}reservations") == []


async def test_parallel_calls_cannot_spend_past_the_budget(
    stack_factory: Callable[..., Stack], fake: FakeAnthropic, backend: Backend
) -> None:
    stack = stack_factory(config_text=config(fake), env=backend.env)
    token = user_with_token(stack, "spender", "capped")
    answers = await spend([stack.url], token)
    await asyncio.sleep(0.5)  # the ledger writes a batch behind
    check(answers, backend, stack)


async def test_two_guardians_on_one_postgresql_share_one_budget(
    stack_factory: Callable[..., Stack], fake: FakeAnthropic, pg_database: str, postgres: object
) -> None:
    env = {"DATABASE_URL": pg_database}
    first = stack_factory(config_text=config(fake), env=env)
    second = stack_factory(config_text=config(fake), env=env)
    token = user_with_token(first, "spender", "capped")
    answers = await spend([first.url, second.url], token)
    await asyncio.sleep(0.5)
    check(answers, Backend("postgresql", postgres, pg_database), first)  # type: ignore[arg-type]


def test_a_call_whose_maximum_does_not_fit_is_refused_with_the_figures(
    stack_factory: Callable[..., Stack], fake: FakeAnthropic
) -> None:
    stack = stack_factory(config_text=config(fake))
    token = user_with_token(stack, "spender", "capped")
    before = len(fake.requests)
    body = {"model": "dear-model", "messages": [{"role": "user", "content": "x" * 60_000}]}
    answer = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 429
    message = answer.json()["error"]["message"]
    assert "may cost up to" in message and "max_tokens" in message
    assert len(fake.requests) == before  # refused before anything left


async def test_embeddings_count_against_the_budget_too(
    stack_factory: Callable[..., Stack],
) -> None:
    """Embeddings used to add no spend at all: a budget never stopped them."""
    fake = FakeOpenAI(name="emb").start()
    fake.default = Behaviour(hang_s=0.3)
    try:
        text = f"""
[LLM_PROVIDER.emb]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "dear-embed"
[LLM_PROVIDER.emb_END]
[MODEL.dear-embed]
provider = "emb"
cost_input_per_1m = "100000"
cost_output_per_1m = "0"
[MODEL.dear-embed_END]
[ROLE.capped]
monthly_budget_usd = "{BUDGET}"
[ROLE.capped_END]
"""
        stack = stack_factory(config_text=text)
        token = user_with_token(stack, "embedder", "capped")
        headers = {"Authorization": f"Bearer {token}"}
        body = {"model": "dear-embed", "input": "hi"}
        async with httpx.AsyncClient(timeout=60, headers=headers) as client:
            answers = await asyncio.gather(
                *(client.post(f"{stack.url}/v1/embeddings", json=body) for _ in range(CALLS))
            )
        await asyncio.sleep(0.5)
        assert {a.status_code for a in answers} == {200, 429}
        rows = Backend("sqlite").rows(stack, "SELECT outcome, cost_usd FROM {s}usage")
        assert sum(r["outcome"] == "ok" for r in rows) == sum(a.status_code == 200 for a in answers)
        assert sum(r["cost_usd"] or 0.0 for r in rows) <= BUDGET  # 0.3 USD a call (3 tokens)
    finally:
        fake.stop()
