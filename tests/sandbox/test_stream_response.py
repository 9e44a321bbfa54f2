"""The sandbox's `StreamingResponse` (sandbox/stream_response.py) streams in the request's
own task and watches for the client's disconnect: a client that goes away stops the body
iterator where it waits and closes it (a sealed call under it is stopped) and the answer
ends quietly; a cancellation from anyone else, and an error in the stream, still go up;
a disconnect after the stream's end cancels nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.stream_response import StreamingResponse

SCOPE = {"type": "http", "asgi": {"spec_version": "2.1"}}


class Client:
    """The ASGI server's side: what was sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def test_every_chunk_then_the_end_and_no_task_left_behind() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"

    client = Client()
    before = asyncio.all_tasks()
    await StreamingResponse(chunks())(SCOPE, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start"
    assert client.bodies() == [b"one", b"two", b""]
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before  # the watcher is gone


async def test_a_client_that_goes_away_stops_and_closes_the_stream_quietly() -> None:
    client = Client()
    waiting = asyncio.Event()
    closed: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            waiting.set()
            await asyncio.sleep(3600)  # a provider that is slow to answer
            yield b"never"
        finally:
            closed.append("finally")

    answer = asyncio.create_task(StreamingResponse(chunks())(SCOPE, client.receive, client.send))
    await waiting.wait()
    client.gone.set()
    await asyncio.wait_for(answer, 5)  # ends without an exception
    assert answer.exception() is None
    assert closed == ["finally"]
    assert client.bodies() == [b"first"]


async def test_a_client_that_goes_away_during_a_write_still_closes_the_stream() -> None:
    client = Client()
    closed: list[str] = []
    blocked = asyncio.Event()

    async def slow_send(message: dict[str, Any]) -> None:
        client.sent.append(message)
        if message.get("body") == b"first":
            blocked.set()
            await asyncio.sleep(3600)  # the socket is full: the write waits

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            yield b"never"
        finally:
            closed.append("finally")

    answer = asyncio.create_task(StreamingResponse(chunks())(SCOPE, client.receive, slow_send))
    await blocked.wait()
    client.gone.set()
    await asyncio.wait_for(answer, 5)
    assert closed == ["finally"]  # closed at once, not when collected


@pytest.mark.parametrize("client_gone_too", [False, True])
async def test_a_cancellation_from_elsewhere_goes_up(client_gone_too: bool) -> None:
    """The server stopping, alone or while the client also goes away."""
    client = Client()
    started = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        started.set()
        await asyncio.sleep(3600)
        yield b"never"

    answer = asyncio.create_task(StreamingResponse(chunks())(SCOPE, client.receive, client.send))
    await started.wait()
    if client_gone_too:
        client.gone.set()
    answer.cancel()  # the server stopping
    with pytest.raises(asyncio.CancelledError):
        await answer


async def test_an_error_in_the_stream_goes_up() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        raise RuntimeError("the stream broke")

    client = Client()
    with pytest.raises(RuntimeError, match="the stream broke"):
        await StreamingResponse(chunks())(SCOPE, client.receive, client.send)


async def test_a_disconnect_after_the_end_cancels_nothing() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"only"

    client = Client()

    async def request() -> str:
        await StreamingResponse(chunks())(SCOPE, client.receive, client.send)
        client.gone.set()  # the client hangs up once it has everything
        await asyncio.sleep(0.05)  # the request's task goes on (middleware, logging)
        return "finished"

    assert await asyncio.wait_for(request(), 5) == "finished"


async def test_a_receive_that_fails_leaves_the_stream_to_finish() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.01)
        yield b"only"

    async def broken_receive() -> dict[str, Any]:
        raise RuntimeError("the server's queue is gone")

    client = Client()
    await StreamingResponse(chunks())(SCOPE, broken_receive, client.send)
    assert client.bodies() == [b"only", b""]
