"""Tasks across replicas: two guardian processes on one PostgreSQL. A task started on one is
read on the other (its state is in the database, not in the memory of the guardian that runs
it); a cancel asked of the other ends the provider call where it runs, billed as cancelled;
another user gets "not found" from either; a restarted guardian fails its own leftovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import NotFound
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.guardian.test_call_tasks import call, caller, until_done
from tests.guardian.test_limits import config, token_for
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


@pytest.fixture
def pair(fake: FakeOpenAI, pg_database: str) -> Iterator[tuple[GuardianProcess, GuardianProcess]]:
    """Two guardians (two replicas) sharing one PostgreSQL database."""
    fake.default = Behaviour()
    env = {"DATABASE_URL": pg_database}
    first = GuardianProcess(config_text=config(fake), env=env).start()
    second = GuardianProcess(config_text=config(fake), env=env).start()
    yield first, second
    first.stop()
    second.stop()
    fake.default = Behaviour()


async def connect(guardian: GuardianProcess) -> RPCClient:
    async def channel() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    client = RPCClient(channel, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    client.start()
    assert await client.wait_connected(5)
    return client


@pytest.fixture
async def clients(pair: tuple[GuardianProcess, GuardianProcess]) -> AsyncIterator[list[RPCClient]]:
    made = [await connect(pair[0]), await connect(pair[1])]
    yield made
    for client in made:
        await client.close()


async def test_a_task_started_on_one_guardian_is_read_and_cancelled_on_another(
    pair: tuple[GuardianProcess, GuardianProcess], clients: list[RPCClient], fake: FakeOpenAI
) -> None:
    a, b = clients
    ada = token_for(pair[0], "ada", "budgeted")
    bob = token_for(pair[0], "bob", "limited")
    start = {"caller": caller(ada), "tool": "llm_complete", "prompt": "hi", "max_tokens": 6}
    started = await call(a, "tasks.start", start)
    done = await until_done(b, ada, started["task_id"], tries=200)  # read on the other guardian
    assert done["status"] == "completed" and done["result"]["provider"] == "fake"
    assert done["result"]["cost_usd"] > 0
    ref = {"caller": caller(bob), "task_id": started["task_id"]}
    with pytest.raises(NotFound) as other:
        await b.call("tasks.get", ref)
    with pytest.raises(NotFound):
        await b.call("tasks.cancel", ref)
    with pytest.raises(NotFound) as none:
        await b.call("tasks.get", {"caller": caller(bob), "task_id": "0" * 32})
    assert other.value.message.replace(started["task_id"], "X") == none.value.message.replace(
        "0" * 32, "X"
    )

    # a call held by the provider on A, cancelled through B
    fake.default = Behaviour(hang_s=30)
    disconnects = fake.disconnects
    slow = await call(a, "tasks.start", {**start, "prompt": "slow"})
    await asyncio.sleep(0.5)  # the provider call is out
    assert (await call(b, "tasks.get", {"caller": caller(ada), "task_id": slow["task_id"]}))[
        "status"
    ] == "working"
    with pytest.raises(NotFound):  # another user cannot cancel it either
        await b.call("tasks.cancel", {"caller": caller(bob), "task_id": slow["task_id"]})
    asked = time.monotonic()
    mine = {"caller": caller(ada), "task_id": slow["task_id"]}
    cancelled = await call(b, "tasks.cancel", mine)
    assert cancelled["status"] == "cancelled"
    assert time.monotonic() - asked < 3  # A noticed within its poll (half a second)
    for _ in range(40):  # the provider saw its connection close
        if fake.disconnects > disconnects:
            break
        await asyncio.sleep(0.05)
    assert fake.disconnects > disconnects
    assert (await call(a, "tasks.get", mine))["status"] == "cancelled"
    usage = await call(a, "usage.mine", {"caller": caller(ada)})  # A's ledger flushed first
    # two calls: one answered, one ended as not ok, billed what it may have consumed
    assert usage["calls"] == 2 and usage["errors"] == 1 and usage["input_tokens"] > 0


async def test_a_restarted_guardian_fails_the_tasks_it_left_running(
    pair: tuple[GuardianProcess, GuardianProcess], clients: list[RPCClient], fake: FakeOpenAI
) -> None:
    a, b = clients
    ada = token_for(pair[0], "ada", "budgeted")
    fake.default = Behaviour(hang_s=30)
    start = {"caller": caller(ada), "tool": "llm_complete", "prompt": "slow", "max_tokens": 6}
    started = await call(a, "tasks.start", start)
    await asyncio.sleep(0.5)
    ref = {"caller": caller(ada), "task_id": started["task_id"]}
    killed = pair[0].process
    assert killed is not None
    killed.kill()  # no clean stop: the row is left `working`
    killed.wait(10)
    assert (await call(b, "tasks.get", ref))["status"] == "working"
    # the same runtime directory, so the same replica name; its socket is bound only after
    # start-up settled what the killed process left
    pair[0].socket_path.unlink(missing_ok=True)
    pair[0].start()
    failed = await call(b, "tasks.get", ref)
    assert failed["status"] == "failed" and "restarted" in failed["status_message"]
    assert failed["error"]["code"] == "unavailable"
