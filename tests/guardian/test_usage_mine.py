"""`usage.mine` on the guardian's sandbox socket: whose usage it answers comes from the
credential alone (no parameter names a user), a user sees their own calls, cost and budget
and nobody else's, and the answer fits its schema (the admin socket does not offer it:
tests/protocol/test_schema.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import InvalidParams, Unauthenticated
from protocol.methods import METHODS
from protocol.schema import validate
from tests.fakes.providers import FakeOpenAI
from tests.guardian.test_limits import config, token_for
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def guardian_costed(fake: FakeOpenAI, request: pytest.FixtureRequest) -> Iterator[GuardianProcess]:
    env = {}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("pg_database")
    process = GuardianProcess(config_text=config(fake), env=env).start()
    yield process
    process.stop()


@pytest.fixture
async def sandbox(guardian_costed: GuardianProcess) -> AsyncIterator[RPCClient]:
    async def connect() -> SocketChannel:
        return await open_unix_channel(str(guardian_costed.socket_path))

    client = RPCClient(connect, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    client.start()
    assert await client.wait_connected(5)
    yield client
    await client.close()


def caller(token: str | None) -> dict[str, Any]:
    found = {"ip": "127.0.0.1", "user_agent": "t"}
    return {**found, "credential": token} if token else found


async def mine(sandbox: RPCClient, token: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = await sandbox.call("usage.mine", {"caller": caller(token)})
    validate(METHODS["usage.mine"].result, answer)
    return answer


async def test_each_user_sees_their_own_usage_and_budget_only(
    guardian_costed: GuardianProcess, sandbox: RPCClient
) -> None:
    ada = token_for(guardian_costed, "ada", "budgeted")
    bob = token_for(guardian_costed, "bob", "limited")
    before = await mine(sandbox, ada)
    assert before["principal"] == "ada" and before["role"] == "budgeted"
    assert before["calls"] == 0 and before["monthly_budget_usd"] == 0.2
    assert before["budget_left_usd"] == 0.2

    call = {"caller": caller(ada), "tool": "llm_complete", "prompt": "hi", "max_tokens": 6}
    answer = await sandbox.call("llm.complete", call)
    after = await mine(sandbox, ada)  # at once: rows still queued are written first
    assert after["calls"] == 1 and after["errors"] == 0
    assert after["cost_usd"] == pytest.approx(answer["cost_usd"])
    assert after["input_tokens"] == answer["usage"]["input_tokens"]
    assert after["spent_usd"] == pytest.approx(answer["cost_usd"])
    assert after["budget_left_usd"] == pytest.approx(0.2 - answer["cost_usd"])

    others = await mine(sandbox, bob)
    assert others["principal"] == "bob" and others["calls"] == 0 and others["cost_usd"] == 0
    assert others["monthly_budget_usd"] is None and others["requests_per_min"] == 4


async def test_no_parameter_names_a_user_and_a_credential_is_needed(
    guardian_costed: GuardianProcess, sandbox: RPCClient
) -> None:
    ada = token_for(guardian_costed, "ada", "budgeted")
    with pytest.raises(InvalidParams):
        await sandbox.call("usage.mine", {"caller": caller(ada), "user": "bob"})
    with pytest.raises(Unauthenticated):  # users exist: no credential is no one
        await mine(sandbox, None)
