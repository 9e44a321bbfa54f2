"""Attack surface: calls in flight when the guardian is killed (SIGKILL, the OOM killer, a
power cut of the process).

The attack: a principal without a budget starts calls, and the guardian is killed while
they are at the provider. No usage row and no audit entry was left, though the provider
charged the key: the calls were free and invisible. Every call now records its start before
it leaves, budgeted or not, and the next start settles each leftover as outcome
`interrupted`, billed at the call's maximum, `estimated`, and audited. Against a real
guardian on SQLite and PostgreSQL; the fake provider holds each call until the kill.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.client import RPCClient
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeBrave, FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox
from tests.security.stackdb import BACKENDS, Backend, make_backend, user_with_token

PROMPT = "a call the guardian never finishes"


def config(fake: FakeOpenAI, search: FakeBrave) -> str:
    return f"""
[SEARCH_PROVIDER.brave]
base_url = "{search.base}/res/v1/web/search"
allow_insecure = "true"
requires_key = "false"
timeout_sec = "30"
[SEARCH_PROVIDER.brave_END]
[LLM_PROVIDER.openai]
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "gpt-test"
timeout_sec = "30"
[LLM_PROVIDER.openai_END]
[MODEL.gpt-test]
provider = "openai"
cost_input_per_1m = "3"
cost_output_per_1m = "15"
max_output_tokens = "512"
[MODEL.gpt-test_END]
[MODEL.embed-test]
provider = "openai"
cost_input_per_1m = "1"
cost_output_per_1m = "0"
[MODEL.embed-test_END]
[ROLE.unlimited]
[ROLE.unlimited_END]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="openai")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def search() -> Iterator[FakeBrave]:
    server = FakeBrave(name="brave")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


@pytest.fixture
def guardian(fake: FakeOpenAI, search: FakeBrave, backend: Backend) -> Iterator[GuardianProcess]:
    for server in (fake, search):
        server.default = Behaviour()
        server._queue.clear()
        server.requests.clear()
    process = GuardianProcess(config_text=config(fake, search), env=backend.env).start()
    yield process
    process.stop()


@pytest.fixture
async def rpc(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await rpc_as_sandbox(guardian.socket_path)
    yield client
    await client.close()


@pytest.fixture
def token(guardian: GuardianProcess) -> str:
    return user_with_token(guardian, "free", "unlimited")


def caller(token: str) -> dict[str, Any]:
    return {"ip": "10.1.2.3", "user_agent": "t", "credential": token}


async def wait_for(guardian: GuardianProcess, backend: Backend, sql: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 15
    rows: list[Any] = []
    while time.monotonic() < deadline:
        rows = backend.rows(guardian, sql)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(rows)} of {count} rows for {sql}:\n{guardian.logs()[-3000:]}")


async def test_calls_in_flight_of_a_principal_without_a_budget_survive_a_sigkill(
    guardian: GuardianProcess,
    backend: Backend,
    rpc: RPCClient,
    token: str,
    fake: FakeOpenAI,
    search: FakeBrave,
) -> None:
    fake.default = Behaviour(hang_s=20)  # every call waits at the provider until the kill
    search.default = Behaviour(hang_s=20)
    calls = [
        asyncio.ensure_future(
            rpc.call(
                "llm.complete",
                {
                    "caller": caller(token),
                    "tool": "llm_complete",
                    "prompt": PROMPT,
                    "max_tokens": 100,
                },
            )
        ),
        asyncio.ensure_future(
            rpc.call(
                "llm.embed",
                {"caller": caller(token), "model": "embed-test", "input": ["embed me"]},
            )
        ),
        asyncio.ensure_future(
            rpc.call("search.web", {"caller": caller(token), "tool": "web_search", "query": "q"})
        ),
    ]
    # a stream is sent as it is made
    rpc.stream(
        "llm.stream",
        {"caller": caller(token), "tool": "llm_complete", "prompt": PROMPT, "max_tokens": 200},
    )
    # all four are at their provider, each with its start recorded
    deadline = time.monotonic() + 15
    while len(fake.requests) < 3 or not search.requests:
        assert time.monotonic() < deadline, guardian.logs()[-3000:]
        await asyncio.sleep(0.02)
    held = await wait_for(guardian, backend, "SELECT * FROM {s}reservations ORDER BY tool", 4)
    assert {h["counted"] for h in held} == {0}  # no budget: nothing is held against one
    assert guardian.process is not None
    guardian.process.kill()
    guardian.process.wait(10)
    for call in calls:
        call.cancel()
    assert backend.rows(guardian, "SELECT * FROM {s}usage") == []

    guardian.start()  # the same replica starts again
    rows = await wait_for(
        guardian, backend, "SELECT * FROM {s}usage ORDER BY tool, output_tokens", 4
    )
    assert len(rows) == 4, rows
    embed, chat, streamed, searched = rows
    # a search has no token cost, but it is on the record, and audited
    assert (searched["tool"], searched["outcome"], searched["cost_usd"]) == (
        "web_search",
        "interrupted",
        0,
    )
    rows = [embed, chat, streamed]
    for row in rows:
        assert (row["principal"], row["outcome"], row["estimated"]) == ("free", "interrupted", 1)
        assert row["user_id"].startswith("u_"), row  # the budget key is the user's id
        assert row["input_tokens"] > 0 and row["cost_usd"] > 0, row
    assert (embed["tool"], embed["output_tokens"]) == ("embeddings", 0)
    assert embed["cost_usd"] == pytest.approx(embed["input_tokens"] / 1e6)
    assert (chat["output_tokens"], streamed["output_tokens"]) == (100, 200)
    assert len(PROMPT.encode()) <= chat["input_tokens"] <= len(PROMPT.encode()) + 200
    assert chat["cost_usd"] == pytest.approx((chat["input_tokens"] * 3 + 100 * 15) / 1e6)
    audits = backend.rows(guardian, "SELECT * FROM {s}audit WHERE outcome = 'interrupted'")
    assert len(audits) == 4 and all("never ended" in a["detail"] for a in audits)
    assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
    if backend.name == "postgresql":  # the shared spend counter has what was billed
        counter = backend.rows(
            guardian,
            "SELECT c.value FROM {s}counters c JOIN {s}users u ON c.key = 'spend:' || u.id"
            " WHERE u.name = 'free'",
        )
        assert counter[0]["value"] == pytest.approx(sum(r["cost_usd"] for r in rows))


async def test_a_call_that_ends_leaves_no_start_behind(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str
) -> None:
    """The start is deleted with the usage row, in one transaction: a restart bills nothing."""
    params = {"caller": caller(token), "tool": "llm_complete", "prompt": PROMPT}
    await rpc.call("llm.complete", params)
    (row,) = await wait_for(guardian, backend, "SELECT * FROM {s}usage", 1)
    assert (row["outcome"], row["estimated"]) == ("ok", 0)
    assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
    assert guardian.process is not None
    guardian.process.kill()
    guardian.process.wait(10)
    guardian.start()
    await asyncio.sleep(0.5)
    assert await rpc.wait_connected(15)  # the new guardian is up, past its start
    await rpc.call("health", {})
    assert len(backend.rows(guardian, "SELECT * FROM {s}usage")) == 1
