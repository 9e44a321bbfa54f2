"""The relay methods on the guardian's sandbox socket (guardian/relay.py): session ids one
guardian signs and another checks, only for the principal they were opened for; legacy SSE
messages posted on one guardian reach the stream another holds, only from its principal. On
SQLite (one guardian) the same calls work locally."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import InvalidParams, NotFound
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
def guardians(fake: FakeOpenAI, request: pytest.FixtureRequest) -> Iterator[list[GuardianProcess]]:
    """One guardian on SQLite; two sharing one PostgreSQL database."""
    if request.param == "sqlite":
        made = [GuardianProcess(config_text=config(fake)).start()]
    else:
        env = {"DATABASE_URL": request.getfixturevalue("pg_database")}
        first = GuardianProcess(config_text=config(fake), env=env).start()
        made = [first, GuardianProcess(config_text=config(fake), env=env).start()]
    yield made
    for process in made:
        process.stop()


@pytest.fixture
async def sandboxes(guardians: list[GuardianProcess]) -> AsyncIterator[list[RPCClient]]:
    clients = []
    for process in guardians:

        async def connect(path: str = str(process.socket_path)) -> SocketChannel:
            return await open_unix_channel(path)

        client = RPCClient(connect, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
        client.start()
        assert await client.wait_connected(5)
        clients.append(client)
    yield clients
    for client in clients:
        await client.close()


def caller(token: str) -> dict[str, Any]:
    return {"ip": "127.0.0.1", "user_agent": "t", "credential": token}


async def test_a_session_id_checks_on_any_guardian_for_its_principal_only(
    guardians: list[GuardianProcess], sandboxes: list[RPCClient]
) -> None:
    ada = token_for(guardians[0], "ada", "user")
    bob = token_for(guardians[0], "bob", "user")
    opened = await sandboxes[0].call("relay.session_open", {"caller": caller(ada)})
    validate(METHODS["relay.session_open"].result, opened)
    session = opened["session_id"]
    for sandbox in sandboxes:  # the other guardian shares the deployment's key
        ok = await sandbox.call(
            "relay.session_check", {"caller": caller(ada), "session_id": session}
        )
        validate(METHODS["relay.session_check"].result, ok)
        with pytest.raises(NotFound):
            await sandbox.call(
                "relay.session_check", {"caller": caller(bob), "session_id": session}
            )
        with pytest.raises(NotFound):
            await sandbox.call(
                "relay.session_check", {"caller": caller(ada), "session_id": session[:-2] + "AA"}
            )
        with pytest.raises(InvalidParams):
            await sandbox.call("relay.session_check", {"caller": caller(ada), "session_id": "a b"})


async def test_a_message_reaches_the_stream_only_from_its_principal(
    guardians: list[GuardianProcess], sandboxes: list[RPCClient]
) -> None:
    ada = token_for(guardians[0], "ada", "user")
    bob = token_for(guardians[0], "bob", "user")
    holder, poster = sandboxes[0], sandboxes[-1]
    session = uuid.uuid4().hex
    stream = holder.stream(
        "relay.listen", {"caller": caller(ada), "session_id": session}, timeout=20
    )
    async with stream:
        await asyncio.sleep(0.3)  # registered
        # the same id cannot be taken by anyone else
        with pytest.raises(NotFound):
            async with holder.stream(
                "relay.listen", {"caller": caller(bob), "session_id": session}, timeout=5
            ) as other:
                async for _ in other:
                    pass
        with pytest.raises(NotFound):
            await poster.call(
                "relay.post", {"caller": caller(bob), "session_id": session, "message": "{}"}
            )
        for n in range(3):
            message = f'{{"jsonrpc":"2.0","id":{n},"method":"ping"}}'
            answer = await poster.call(
                "relay.post", {"caller": caller(ada), "session_id": session, "message": message}
            )
            validate(METHODS["relay.post"].result, answer)
        received = [await asyncio.wait_for(stream.__anext__(), 5) for _ in range(3)]
        assert [chunk["message"] for chunk in received] == [
            f'{{"jsonrpc":"2.0","id":{n},"method":"ping"}}' for n in range(3)
        ]  # in order
    await asyncio.sleep(0.3)  # the stream closed: its registration goes
    with pytest.raises(NotFound):
        await poster.call(
            "relay.post", {"caller": caller(ada), "session_id": session, "message": "{}"}
        )
