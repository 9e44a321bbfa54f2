"""The sandbox's hypercorn settings make the Date header once a second (sandbox/server_config):
one Date header on every answer, in HTTP's date format, current to the second."""

from __future__ import annotations

import email.utils
import time

import pytest

from sandbox.server_config import ServerConfig


def _dates(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [value for name, value in headers if name == b"date"]


def test_one_date_header_in_http_format_and_current() -> None:
    config = ServerConfig()
    before = int(time.time())
    (date,) = _dates(config.response_headers("h11"))
    after = time.time()
    parsed = email.utils.parsedate_to_datetime(date.decode("ascii")).timestamp()
    assert before <= parsed <= after
    assert date.endswith(b" GMT")


def test_the_text_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ServerConfig()
    now = [1_800_000_000.2]
    monkeypatch.setattr(time, "time", lambda: now[0])
    first = _dates(config.response_headers("h11"))
    now[0] += 0.5  # the same second: the same text
    assert _dates(config.response_headers("h11")) == first
    now[0] += 1.0
    (later,) = _dates(config.response_headers("h11"))
    assert [later] != first
    assert email.utils.parsedate_to_datetime(later.decode()).timestamp() == 1_800_000_001


def test_the_rest_is_hypercorns() -> None:
    config = ServerConfig()
    config.include_server_header = True
    names = [name for name, _ in config.response_headers("h11")]
    assert names.count(b"date") == 1 and b"server" in names
