"""`tasks.start`, `tasks.get`, `tasks.cancel` on the guardian's sandbox socket: an LLM call
runs as a task of the credential's principal, any sandbox connection may follow it, another
user gets "not found", a cancelled task ends its provider call and is billed as a cancelled
call, and answers fit their schemas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import InvalidParams, NotFound
from protocol.methods import METHODS
from protocol.schema import validate
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.guardian.test_limits import config, token_for
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


@pytest.fixture
def guardian_tasks(fake: FakeOpenAI) -> Iterator[GuardianProcess]:
    fake.default = Behaviour()
    process = GuardianProcess(config_text=config(fake)).start()
    yield process
    process.stop()
    fake.default = Behaviour()


async def connect(guardian: GuardianProcess) -> RPCClient:
    async def channel() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    client = RPCClient(channel, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    client.start()
    assert await client.wait_connected(5)
    return client


@pytest.fixture
async def sandboxes(guardian_tasks: GuardianProcess) -> AsyncIterator[list[RPCClient]]:
    """Two sandbox connections, as two replicas of the sandbox would have."""
    made = [await connect(guardian_tasks), await connect(guardian_tasks)]
    yield made
    for client in made:
        await client.close()


def caller(token: str) -> dict[str, Any]:
    return {"ip": "127.0.0.1", "user_agent": "t", "credential": token}


async def call(client: RPCClient, method: str, params: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await client.call(method, params)
    validate(METHODS[method].result, answer)
    return answer


async def until_done(
    client: RPCClient, token: str, task_id: str, tries: int = 100
) -> dict[str, Any]:
    for _ in range(tries):
        view = await call(client, "tasks.get", {"caller": caller(token), "task_id": task_id})
        if view["status"] != "working":
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} still working")


async def test_a_task_is_its_owners_from_any_connection_and_answers_once_done(
    guardian_tasks: GuardianProcess, sandboxes: list[RPCClient]
) -> None:
    ada = token_for(guardian_tasks, "ada", "budgeted")
    bob = token_for(guardian_tasks, "bob", "limited")
    start = {"caller": caller(ada), "tool": "llm_complete", "prompt": "hi", "max_tokens": 6}
    started = await call(sandboxes[0], "tasks.start", start)
    assert started["status"] == "working" and started["ttl_ms"] == 86_400_000
    assert "restart" in started["status_message"]
    done = await until_done(sandboxes[1], ada, started["task_id"])  # the other replica
    assert done["status"] == "completed" and done["result"]["provider"] == "fake"
    assert done["result"]["cost_usd"] > 0  # billed as any call
    with pytest.raises(NotFound):
        await sandboxes[1].call("tasks.get", {"caller": caller(bob), "task_id": started["task_id"]})
    with pytest.raises(NotFound):
        await sandboxes[0].call(
            "tasks.cancel", {"caller": caller(bob), "task_id": started["task_id"]}
        )
    with pytest.raises(InvalidParams):  # ids are the guardian's own shape
        await sandboxes[0].call("tasks.get", {"caller": caller(ada), "task_id": "../x"})
    mine = await call(sandboxes[0], "usage.mine", {"caller": caller(ada)})
    assert mine["calls"] == 1


async def test_a_cancelled_task_ends_its_provider_call_and_is_billed_as_cancelled(
    guardian_tasks: GuardianProcess, sandboxes: list[RPCClient], fake: FakeOpenAI
) -> None:
    ada = token_for(guardian_tasks, "ada", "budgeted")
    fake.default = Behaviour(hang_s=30)
    start = {"caller": caller(ada), "tool": "llm_complete", "prompt": "slow", "max_tokens": 6}
    started = await call(sandboxes[0], "tasks.start", start)
    await asyncio.sleep(0.5)  # the provider call is out
    ref = {"caller": caller(ada), "task_id": started["task_id"]}
    cancelled = await call(sandboxes[1], "tasks.cancel", ref)
    assert cancelled["status"] == "cancelled"
    assert (await call(sandboxes[0], "tasks.get", ref))["status"] == "cancelled"
    mine = await call(sandboxes[0], "usage.mine", {"caller": caller(ada)})
    # one call, ended as not ok, billed what it may have consumed (its input at least)
    assert mine["calls"] == 1 and mine["errors"] == 1 and mine["input_tokens"] > 0
