"""A whole-body deadline bounds every request: trickling a body byte by byte does not hold a
connection (or a login attempt) open past `[HUB] body_timeout_s`.

The attack: one byte every few seconds to `POST /auth/login`, without a credential. The
deadline used to be per chunk, so the request stayed open for as long as the bytes came.
"""

from __future__ import annotations

import socket
import time

from tests.e2e.world import World


def test_a_trickled_body_is_cut_at_the_whole_body_deadline(w: World) -> None:
    # The world's stack sets body_timeout_s = 3; a byte each 0.5 s stays under any per-chunk
    # timeout for ever.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", w.stack.port), timeout=30) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        reply = b""
        sock.settimeout(0.5)
        while time.monotonic() - started < 20:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            reply += data
            if b"\r\n\r\n" in reply:
                break
    elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert elapsed < 8, f"the body was read for {elapsed:.1f} s"
