"""Secrets in provider error text: a caller who pads the request so that an echoed key sits
on the cut must not get any part of it back, and the ledger must not keep it either."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.security.common import PROVIDER_KEY, call_api, provider_block

#: Any run of this many characters of the key counts as a leak (the redactor's own minimum).
FRAGMENT = 6


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


def fragments(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


def leaked(text: str) -> set[str]:
    return {piece for piece in fragments(PROVIDER_KEY) if piece in text}


def test_a_key_echoed_on_the_cut_never_comes_back(
    stack_factory: Callable[..., Stack], fake: FakeOpenAI
) -> None:
    stack = stack_factory(env={"FAKE_PROVIDER_KEY": PROVIDER_KEY}, config_text=provider_block(fake))
    # The provider echoes the (padded) model name, then the key: wherever the old 200-character
    # cut fell inside the key, all but its tail came back.
    pads = [200 - len(PROVIDER_KEY) + shift for shift in range(1, len(PROVIDER_KEY))]
    for pad in pads:
        message = f"model '{'x' * (pad - 8)}' not found for key {PROVIDER_KEY}"
        fake.behave(Behaviour(status=400, error_message=message))
        status, body = call_api(stack.url, "llm_complete", {"prompt": "hi"})
        assert status >= 400, body
        text = json.dumps(body)
        assert not leaked(text), (pad, text)
    time.sleep(0.5)  # the ledger writes in batches, at most 100 ms behind
    db = sqlite3.connect(stack.runtime / "guardian" / "guardian.db")
    try:
        paths = [row[0] for row in db.execute("SELECT fallback_path FROM usage")]
    finally:
        db.close()
    assert len(paths) >= len(pads)
    for path in paths:
        assert not leaked(path or ""), path
    assert not leaked(stack.logs())
