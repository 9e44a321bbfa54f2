"""Label values of `/metrics` are bounded whatever a client sends.

The attack: thousands of unauthenticated requests with invented HTTP methods; each method
string used to become a label value (a time series kept for ever: memory that never returns).
"""

from __future__ import annotations

import re
import socket

import httpx

from tests.helpers import Stack

TOKEN = "sg_metrics-labels-bootstrap-0123456789"


def _raw(port: int, method: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{method} /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.recv(4096)


def test_invented_methods_share_one_label(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack: Stack = stack_factory(env={"SEALGATE_BOOTSTRAP_TOKEN": TOKEN})
    for n in range(200):
        _raw(stack.port, f"X{n:04d}")
    text = httpx.get(
        f"{stack.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    methods = set(re.findall(r'sealgate_http_requests_total\{[^}]*method="([^"]*)"', text))
    assert methods, text[:2000]
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
