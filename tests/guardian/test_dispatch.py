"""The permit table and the guardian's behaviour towards hostile peers, on real sockets."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import msgpack
import pytest

from guardian.dispatch import PERMITS, Permit, Phase, _typed
from protocol import PROTOCOL_VERSION
from protocol.adminaddr import open_admin_channel
from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.contract_results import Ok
from protocol.errors import ConnectionLost, Internal, InvalidParams
from protocol.framing import encode
from protocol.methods import METHODS
from tests.helpers import GuardianProcess, rpc_as_sandbox


def test_every_permit_has_a_spec_a_handler_and_a_phase() -> None:
    for surface, table in PERMITS.items():
        for name, permit in table.items():
            assert permit.spec is METHODS[name]
            assert surface in permit.spec.surfaces
            assert (permit.inline is None) != (permit.task is None)
            assert permit.phases
    # hello is the only way out of NEW, and only once
    for table in PERMITS.values():
        assert [n for n, p in table.items() if Phase.NEW in p.phases] == ["hello"]
        assert table["hello"].once


def test_every_method_is_permitted_somewhere() -> None:
    for name, spec in METHODS.items():
        for surface in spec.surfaces:
            assert name in PERMITS[surface], f"{name} lacks a permit on {surface}"


async def _hello(channel: SocketChannel, msgid: int = 1) -> list[object]:
    channel.send([0, msgid, "hello", {"protocol_version": PROTOCOL_VERSION, "client": "sandbox"}])
    return (await channel.receive())[0]


async def _closed(channel: SocketChannel) -> bool:
    try:
        async with asyncio.timeout(5):
            while True:
                await channel.receive()
    except ConnectionLost:
        return True


async def _well_behaved(guardian: GuardianProcess) -> RPCClient:
    client = await rpc_as_sandbox(guardian.socket_path, 5)
    return client


@pytest.fixture
async def connect(
    guardian: GuardianProcess,
) -> AsyncIterator[Callable[..., Awaitable[SocketChannel]]]:
    """Raw channels to the guardian, closed after the test."""
    channels: list[SocketChannel] = []

    async def open_channel(admin: bool = False) -> SocketChannel:
        if admin:
            channel = await open_admin_channel(guardian.admin_path)
        else:
            channel = await open_unix_channel(str(guardian.socket_path))
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        channel.close()
    await asyncio.sleep(0)


HOSTILE = {
    "random bytes": b"\x00\x00\x00\x10" + os.urandom(16),
    "4 GiB length": b"\xff\xff\xff\xff",
    "not an array": encode({"method": "health"}),
    "unknown method": encode([0, 9, "admin.users.delete", {}]),
    "secret-ish method": encode([0, 9, "http.request", {"url": "https://x"}]),
    "admin method on sandbox socket": encode([0, 9, "status", {}]),
    "second hello": encode(
        [0, 9, "hello", {"protocol_version": PROTOCOL_VERSION, "client": "sandbox"}]
    ),
    "response from client": encode([1, 9, None, {}]),
    "unknown notification": encode([2, "config.changed", {}]),
}


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_frames_close_only_that_connection(
    guardian: GuardianProcess, connect: Callable[..., Awaitable[SocketChannel]], name: str
) -> None:
    client = await _well_behaved(guardian)
    hostile = await connect()
    assert (await _hello(hostile))[2] is None
    hostile.send_raw(HOSTILE[name])
    assert await _closed(hostile)
    assert (await client.call("health", {}))["status"] == "ok"
    await client.close()
    assert "sealgate.security" in guardian.logs()


async def test_calls_before_hello_close_the_connection(
    connect: Callable[..., Awaitable[SocketChannel]],
) -> None:
    channel = await connect()
    channel.send([0, 1, "health", {}])
    assert await _closed(channel)


@pytest.mark.parametrize(
    "params",
    [
        {"protocol_version": "1", "client": "sandbox"},
        {"protocol_version": PROTOCOL_VERSION},
        {"protocol_version": PROTOCOL_VERSION, "client": "x" * (1024 * 1024)},
        {"protocol_version": PROTOCOL_VERSION, "client": "sandbox", "extra": 1},
        {"protocol_version": 99, "client": "sandbox"},
        {"protocol_version": PROTOCOL_VERSION, "client": "ctl"},
    ],
)
async def test_bad_params_of_a_permitted_method_get_a_typed_error(
    connect: Callable[..., Awaitable[SocketChannel]], params: dict[str, object]
) -> None:
    channel = await connect()
    channel.send([0, 1, "hello", params])
    answer = (await channel.receive())[0]
    assert answer[0:2] == [1, 1] and answer[3] is None
    assert answer[2]["code"] == InvalidParams.code.value


async def test_wrong_param_types_after_hello(
    connect: Callable[..., Awaitable[SocketChannel]],
) -> None:
    channel = await connect()
    await _hello(channel)
    channel.send([0, 2, "health", {"verbose": "x" * (1024 * 1024)}])
    answer = (await channel.receive())[0]
    assert answer[2]["code"] == "invalid_params" and "unknown parameter" in answer[2]["message"]


async def test_frame_over_the_configured_maximum_is_refused_before_its_body(
    guardian: GuardianProcess,
) -> None:
    client = await _well_behaved(guardian)
    reader, writer = await asyncio.open_unix_connection(str(guardian.socket_path))
    writer.write(struct.pack(">I", 9 * 1024 * 1024))  # announce 9 MiB, send none of it
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without waiting for a body
    assert (await client.call("health", {}))["status"] == "ok"
    writer.close()
    await writer.wait_closed()
    await client.close()


async def test_many_calls_multiplexed_on_one_connection(guardian: GuardianProcess) -> None:
    client = await _well_behaved(guardian)
    results = await asyncio.gather(*(client.call("health", {}) for _ in range(500)))
    assert {r["status"] for r in results} == {"ok"}
    await client.close()


async def test_admin_socket_serves_status(guardian: GuardianProcess) -> None:
    async def connect() -> SocketChannel:
        return await open_admin_channel(guardian.admin_path)

    client = RPCClient(connect, client_name="ctl")
    client.start()
    assert await client.wait_connected(5)
    status = await client.call("status", {})
    assert status["config_path"] == str(guardian.config)
    assert status["sandbox_connections"] == 0
    await client.close()
    # One uid (the guardian's own is the sandbox's): the admin socket is an abstract name
    # (see tests/security/test_single_uid_isolation.py), and no file stands for it.
    assert not guardian.admin_path.exists()
    assert status["protections"]["uids"] == "one"
    assert status["protections"]["guardian_dumpable"] is False
    assert oct(guardian.socket_path.stat().st_mode & 0o777) == "0o660"


def test_msgpack_is_what_we_think() -> None:
    # The frames above rely on msgpack refusing non-string map keys and extension types.
    with pytest.raises(ValueError):
        msgpack.unpackb(msgpack.packb({1: 2}), strict_map_key=True)


def test_every_answer_leaves_as_its_result_struct() -> None:
    """A handler's map is decoded into its method's result Struct before it is sent: a field
    the contract does not declare never leaves (an `Internal` answer instead)."""
    spec = METHODS["users.lock"]

    async def leaky(ctx: object, params: object) -> dict[str, object]:
        return {"ok": True, "password_hash": "$argon2id$..."}

    async def sound(ctx: object, params: object) -> Ok:
        return Ok(ok=True)

    def inline(ctx: object, params: object) -> dict[str, object]:
        return {"ok": True}

    typed = _typed(
        {
            "leaky": Permit(spec=spec, phases=frozenset({Phase.READY}), task=leaky),
            "sound": Permit(spec=spec, phases=frozenset({Phase.READY}), task=sound),
            "inline": Permit(spec=spec, phases=frozenset({Phase.READY}), inline=inline),
        }
    )
    with pytest.raises(Internal, match="does not fit Ok"):
        asyncio.run(typed["leaky"].task(None, None))  # type: ignore[misc]
    assert asyncio.run(typed["sound"].task(None, None)) == {"ok": True}  # type: ignore[misc]
    assert typed["inline"].inline(None, None) == {"ok": True}  # type: ignore[misc]
    # every table the guardian serves is built this way
    for table in PERMITS.values():
        for permit in table.values():
            handler = permit.inline or permit.task
            assert handler is not None and handler.__qualname__.startswith("_typed_")
