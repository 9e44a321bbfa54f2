"""The RPC client on the in-memory channel, with a scripted guardian on the other end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protocol.channel import MemoryChannel
from protocol.client import RPCClient
from protocol.errors import InvalidParams, Timeout, Unavailable
from protocol.messages import Notification, Request, parse, response, stream_chunk


class ScriptedGuardian:
    """Answers hello, then whatever the test's handler says."""

    def __init__(self) -> None:
        self.channels: list[MemoryChannel] = []
        self.requests: list[Request] = []
        self.notifications: list[Notification] = []
        self.refuse = False
        self.hold: dict[int, Request] = {}

    async def connect(self) -> MemoryChannel:
        if self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        client_end, server_end = MemoryChannel.pair()
        self.channels.append(server_end)
        asyncio.get_running_loop().create_task(self._serve(server_end))
        return client_end

    async def _serve(self, channel: MemoryChannel) -> None:
        try:
            while True:
                for raw in await channel.receive():
                    message = parse(raw)
                    if isinstance(message, Notification):
                        self.notifications.append(message)
                    elif isinstance(message, Request):
                        self.requests.append(message)
                        self._answer(channel, message)
        except Exception:
            return

    def _answer(self, channel: MemoryChannel, request: Request) -> None:
        if request.method == "hello":
            channel.send(response(request.msgid, None, {"tools": ["health_check"]}))
        elif request.method == "echo":
            channel.send(response(request.msgid, None, request.params))
        elif request.method == "bad":
            channel.send(response(request.msgid, InvalidParams("nope").to_wire(), None))
        elif request.method == "stream":
            for i in range(3):
                channel.send(stream_chunk(request.msgid, f"part{i}"))
            channel.send(response(request.msgid, None, {"done": True}))
        else:  # "slow", "endless": answered later, or never
            self.hold[request.msgid] = request


async def started(guardian: ScriptedGuardian, **kwargs: Any) -> RPCClient:
    client = RPCClient(guardian.connect, client_name="sandbox", backoff_initial=0.01, **kwargs)
    client.start()
    assert await client.wait_connected(2)
    return client


async def test_hello_result_is_kept() -> None:
    client = await started(ScriptedGuardian())
    assert client.hello == {"tools": ["health_check"]}
    await client.close()


async def test_many_calls_in_flight_are_answered_out_of_order() -> None:
    guardian = ScriptedGuardian()
    client = await started(guardian)
    slow = asyncio.create_task(client.call("slow", {}))
    await asyncio.sleep(0.01)
    results = await asyncio.gather(*(client.call("echo", {"i": i}) for i in range(50)))
    assert results == [{"i": i} for i in range(50)]
    assert not slow.done()
    (msgid,) = guardian.hold
    guardian.channels[-1].send(response(msgid, None, "late"))
    assert await slow == "late"
    await client.close()


async def test_typed_errors_are_raised() -> None:
    client = await started(ScriptedGuardian())
    with pytest.raises(InvalidParams, match="nope"):
        await client.call("bad", {})
    await client.close()


async def test_a_call_times_out_without_blocking_others() -> None:
    client = await started(ScriptedGuardian())
    with pytest.raises(Timeout):
        await client.call("slow", {}, timeout=0.05)
    assert await client.call("echo", {"ok": 1}) == {"ok": 1}
    await client.close()


async def test_lost_connection_fails_calls_in_flight_and_reconnects() -> None:
    guardian = ScriptedGuardian()
    client = await started(guardian)
    pending = asyncio.create_task(client.call("slow", {}))
    await asyncio.sleep(0.01)
    guardian.refuse = True
    guardian.channels[-1].close()
    with pytest.raises(Unavailable):
        await pending
    with pytest.raises(Unavailable, match="guardian unavailable"):
        await client.call("echo", {})
    guardian.refuse = False
    assert await client.wait_connected(2)
    assert await client.call("echo", {"back": True}) == {"back": True}
    assert len(guardian.channels) == 2
    await client.close()


async def test_stream_yields_chunks_in_order() -> None:
    client = await started(ScriptedGuardian())
    async with client.stream("stream", {}) as stream:
        chunks = [chunk async for chunk in stream]
    assert chunks == ["part0", "part1", "part2"]
    assert stream.result == {"done": True}
    await client.close()


async def test_leaving_a_stream_early_sends_cancel() -> None:
    guardian = ScriptedGuardian()
    client = await started(guardian)
    stream = client.stream("endless", {})
    task = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.02)
    (msgid,) = guardian.hold
    guardian.channels[-1].send(stream_chunk(msgid, "first"))
    assert await task == "first"
    await stream.aclose()
    await stream.aclose()  # idempotent
    await asyncio.sleep(0.02)
    assert guardian.notifications == [Notification("cancel", {"msgid": msgid})]
    await client.close()


async def test_closed_client_is_a_programming_error() -> None:
    client = await started(ScriptedGuardian())
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.call("echo", {})


async def test_a_request_over_the_frame_limit_fails_only_itself() -> None:
    # The guardian closes a connection that sends an oversized frame, and with it every call
    # in flight on it; the client refuses to send one, so only the oversized call fails.
    guardian = ScriptedGuardian()
    client = await started(guardian, max_frame_size=64 * 1024)
    slow = asyncio.create_task(client.call("slow", {}, timeout=5))
    await asyncio.sleep(0.01)
    with pytest.raises(InvalidParams, match="over the RPC frame limit"):
        await client.call("echo", {"text": "x" * 100_000})
    with pytest.raises(InvalidParams, match="over the RPC frame limit"):
        client.stream("stream", {"text": "x" * 100_000})
    assert await client.call("echo", {"small": 1}) == {"small": 1}
    assert len(guardian.channels) == 1 and not slow.done()  # the connection stayed up
    assert "echo" in [r.method for r in guardian.requests]
    assert all(len(str(r.params)) < 1000 for r in guardian.requests)
    slow.cancel()
    await client.close()


async def test_a_guardian_still_starting_is_retried_at_once_and_a_lost_one_with_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started together with the guardian, the client tries again every `backoff_initial`
    until the first hello (its imports overlap the guardian's boot, so the wait is short);
    once it has lost a connection, it backs off."""
    guardian = ScriptedGuardian()
    delays: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 6 or len(delays) == 12:
            guardian.refuse = False  # the guardian is up
        await sleep(0)

    monkeypatch.setattr("protocol.client.asyncio.sleep", recorded)
    guardian.refuse = True
    client = RPCClient(guardian.connect, client_name="sandbox", backoff_initial=0.01)
    client.start()
    assert await client.wait_connected(2)
    assert delays == [0.01] * 6
    guardian.refuse = True
    guardian.channels[-1].close()
    while len(delays) < 12:
        await sleep(0)
    assert await client.wait_connected(2)
    assert delays[6:] == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32]
    await client.close()
