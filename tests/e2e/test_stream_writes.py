"""A stream's first text leaves in the same write as its opening, in every dialect.

The opening (OpenAI's role chunk, Anthropic's `message_start`, the Responses API's
`response.created`) used to be a write of its own, and each event of a chunk another: the
first text waited behind a write and a wakeup of the client per event (time to first chunk,
bench/RESULTS.md). Read with h11 as the client, which reports where each chunk of the chunked
body starts and ends: hypercorn sends one chunk per body message, so the first chunk is the
first write.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import h11
import pytest

from tests.e2e.world import World

HELLO = [{"role": "user", "content": "Hello"}]
CASES = {
    "/v1/chat/completions": (
        {"model": "claude-test", "stream": True, "messages": HELLO},
        ['"role": "assistant"', '"content": "Claude '],
    ),
    "/v1/messages": (
        {"model": "claude-test", "stream": True, "max_tokens": 64, "messages": HELLO},
        ["event: message_start", "event: content_block_start", '"text":"Claude '],
    ),
    "/v1/responses": (
        {"model": "claude-test", "stream": True, "input": "Hello", "store": False},
        ["event: response.created", "event: response.output_text.delta", '"delta":"Claude '],
    ),
}
LAST = {
    "/v1/chat/completions": "data: [DONE]",
    "/v1/messages": "event: message_stop",
    "/v1/responses": "event: response.completed",
}


def body_chunks(url: str, path: str, body: dict[str, Any]) -> list[bytes]:
    """The pieces of a chunked response body as the server framed them."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    client = h11.Connection(h11.CLIENT)
    chunks: list[bytes] = []
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        request = h11.Request(
            method="POST",
            target=path,
            headers=[
                ("host", parts.netloc),
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
                ("connection", "close"),
            ],
        )
        sock.sendall(client.send(request) + client.send(h11.Data(data=payload)))
        sock.sendall(client.send(h11.EndOfMessage()))
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200, event
            elif isinstance(event, h11.Data):
                if event.chunk_start or not chunks:
                    chunks.append(b"")
                chunks[-1] += event.data
            elif isinstance(event, h11.EndOfMessage):
                return chunks


@pytest.mark.parametrize("path", sorted(CASES))
def test_the_first_text_leaves_with_the_opening(w: World, path: str) -> None:
    body, first = CASES[path]
    chunks = body_chunks(w.stack.url, path, body)
    opening = chunks[0].decode()
    for piece in first:
        assert piece in opening, (piece, chunks[:3])
    # the rest of the stream is unchanged, to its end
    assert LAST[path] in chunks[-1].decode() and len(chunks) > 3
