"""hypercorn's HTTP/1.1 response head leaves with the body's first piece
(`sandbox.hypercorn_patch.apply_head_with_body`): one write, not two, when the body follows
in the same turn of the loop; alone on the next turn when nothing follows; and never after
bytes that come behind it.

The patched method is driven on a stand-in connection that has what it uses (an h11 server
connection that has read a request, and `send`, which records each write).
"""

from __future__ import annotations

import asyncio

import h11
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol

from sandbox import hypercorn_patch

HEAD = h11.Response(status_code=200, headers=[("content-type", "text/event-stream")])


class Connection:
    def __init__(self) -> None:
        self.connection = h11.Connection(h11.SERVER)
        self.connection.receive_data(b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
        assert isinstance(self.connection.next_event(), h11.Request)
        self.writes: list[bytes] = []

    async def send(self, event: RawData) -> None:
        self.writes.append(event.data)

    async def event(self, event: object) -> None:
        await H11Protocol._send_h11_event(self, event)  # type: ignore[arg-type]


def run(scenario: object) -> None:
    hypercorn_patch.apply_head_with_body()
    asyncio.run(scenario)  # type: ignore[arg-type]


def test_a_head_and_the_first_piece_of_its_body_are_one_write() -> None:
    async def scenario() -> None:
        conn = Connection()
        await conn.event(HEAD)
        await conn.event(h11.Data(data=b"data: first\n\n"))
        assert len(conn.writes) == 1
        assert conn.writes[0].startswith(b"HTTP/1.1 200 ")
        assert conn.writes[0].endswith(b"data: first\n\n\r\n")
        await conn.event(h11.Data(data=b"data: second\n\n"))
        await conn.event(h11.EndOfMessage())
        assert len(conn.writes) == 3  # later pieces as before, each its own write
        await asyncio.sleep(0.01)
        assert len(conn.writes) == 3  # nothing left held to write again

    run(scenario())


def test_a_head_with_nothing_after_it_leaves_alone_on_the_next_turn() -> None:
    async def scenario() -> None:
        conn = Connection()
        await conn.event(HEAD)  # an event stream waiting for its first event
        assert conn.writes == []
        await asyncio.sleep(0.01)
        assert len(conn.writes) == 1 and conn.writes[0].startswith(b"HTTP/1.1 200 ")
        await conn.event(h11.Data(data=b"data: late\n\n"))
        assert len(conn.writes) == 2 and b"HTTP/1.1" not in conn.writes[1]

    run(scenario())


def test_bytes_never_overtake_a_held_head() -> None:
    async def scenario() -> None:
        conn = Connection()
        await conn.event(HEAD)
        await asyncio.sleep(0)  # the flush is scheduled, not yet run
        await conn.event(h11.Data(data=b"data: x\n\n"))
        await asyncio.sleep(0.01)
        joined = b"".join(conn.writes)
        assert joined.startswith(b"HTTP/1.1 200 ") and joined.count(b"HTTP/1.1") == 1
        assert joined.endswith(b"data: x\n\n\r\n")

    run(scenario())


def test_a_bodyless_answer_is_written_whole() -> None:
    async def scenario() -> None:
        conn = Connection()
        await conn.event(h11.Response(status_code=204, headers=[]))
        await conn.event(h11.EndOfMessage())
        assert len(conn.writes) == 1 and conn.writes[0].startswith(b"HTTP/1.1 204 ")

    run(scenario())
