"""Redaction holes: a retry logged with provider text cut before the log filter redacts it,
and a reload that forgets a key while a call that still uses it runs.

The unit tests pin the redactor's rules; the stack tests show the whole path (a provider that
echoes the key, the real log, the answer, the ledger and the audit)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from guardian.calls.retries import with_retries
from guardian.providers.types import ProviderFailure
from guardian.redact import REPLACEMENT, Redactor
from guardian.tasks import TaskSet
from protocol.pyfun import HubLimitsConfig
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack, run_ctl
from tests.security.common import PROVIDER_KEY, call_api, provider_block

#: Any run of this many characters of a key counts as a leak (the redactor's own minimum).
FRAGMENT = 6
ROTATED_KEY = "fake-sec-rotated-key-ZYXWVUTSRQPONMLK"


#: Six hex digits turn up by chance in what the database holds (digests, the audit log's
#: hashes, session ids, timestamps): a window of the key made only of hex digits counts as
#: a leak when twelve of them show, still a chance of one in 16**12.
HEX_FRAGMENT = 12
_HEX = re.compile(r"[0-9a-f]+")


def leaked(text: str, secret: str = PROVIDER_KEY) -> set[str]:
    pieces = set()
    for i in range(len(secret) - FRAGMENT + 1):
        piece = secret[i : i + FRAGMENT]
        pieces.add(secret[i : i + HEX_FRAGMENT] if _HEX.fullmatch(piece) else piece)
    return {piece for piece in pieces if piece in text}


def test_a_leak_of_the_keys_hex_part_alone_is_still_caught() -> None:
    assert leaked("... 0123456789ab ...") == {"0123456789ab"}
    assert leaked("a digest 9f012345e7 and a time 1796687634.0123457") == set()
    assert leaked("key-01") == {"key-01"}


# unit: the redactor's lifetime rules ---------------------------------------------------------
def test_a_dropped_key_stays_redacted_while_a_call_that_started_before_runs() -> None:
    redactor = Redactor([PROVIDER_KEY])
    with redactor.call():
        redactor.update([ROTATED_KEY])  # a reload rotates the key out mid-call
        assert redactor.redact(f"echo {PROVIDER_KEY}") == f"echo {REPLACEMENT}"
        assert redactor.redact(f"echo {ROTATED_KEY}") == f"echo {REPLACEMENT}"
    # the call ended: nothing can hold the old key any more
    assert redactor.retired_count == 0
    assert redactor.redact(f"echo {PROVIDER_KEY}") == f"echo {PROVIDER_KEY}"


def test_a_call_started_after_the_reload_does_not_keep_the_old_key_alive() -> None:
    redactor = Redactor([PROVIDER_KEY])
    before = redactor.call()
    before.__enter__()
    redactor.update([ROTATED_KEY])
    with redactor.call():
        before.__exit__(None, None, None)  # the only call that could hold the old key ends
        assert redactor.retired_count == 0
    with redactor.call():
        redactor.update([])
        assert redactor.redact(ROTATED_KEY) == REPLACEMENT


def test_overlapping_reloads_keep_each_dropped_key_for_its_own_calls() -> None:
    first, second, third = "first-key-aaaaaaaa", "second-key-bbbbbbbb", "third-key-cccccccc"
    redactor = Redactor([first])
    old = redactor.call()
    old.__enter__()
    redactor.update([second])
    middle = redactor.call()
    middle.__enter__()
    redactor.update([third])
    assert redactor.redact(f"{first} {second} {third}") == " ".join([REPLACEMENT] * 3)
    old.__exit__(None, None, None)
    assert redactor.redact(first) == first  # only `old` could hold it
    assert redactor.redact(second) == REPLACEMENT  # `middle` may hold it
    middle.__exit__(None, None, None)
    assert redactor.redact(second) == second
    assert redactor.redact(third) == REPLACEMENT


async def test_a_retry_is_logged_redacted_whole_before_any_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redactor = Redactor([PROVIDER_KEY])
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) == 1:  # the key straddles the old 120-character cut
            raise ProviderFailure("status", f"HTTP 500: {'x' * 100}{PROVIDER_KEY}", status=500)
        return "ok"

    async def sleep(seconds: float) -> None:
        return None

    with caplog.at_level(logging.INFO, logger="sealgate.guardian.retries"):
        await with_retries(
            call,
            name="p",
            describe=lambda failure: redactor.redact_and_cut(failure.describe(), 120),
            limits=HubLimitsConfig(retry_count=1, retry_delay_sec=0),
            deadline=time.monotonic() + 60,
            is_last=False,
            sleep=sleep,
        )
    assert REPLACEMENT in caplog.text or "..." in caplog.text
    assert not leaked(caplog.text)


# the whole stack -------------------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


def keyed_stack(stack_factory: Callable[..., Stack], fake: FakeOpenAI, extra: str = "") -> Stack:
    def env_file(stack: Stack) -> None:
        path = stack.dir / ".env"
        path.write_text(f"FAKE_PROVIDER_KEY={PROVIDER_KEY}\n")
        path.chmod(0o600)
        if os.geteuid() == 0 and "HUB_SINGLE_UID" not in stack.env:
            from supervise.users import ensure_user

            guardian = ensure_user("hub-guardian")  # the env file is the guardian's alone
            os.chown(path, guardian.uid, guardian.gid)

    return stack_factory(config_text=provider_block(fake) + extra, before_start=env_file)


def stored_text(stack: Stack) -> str:
    """Every row of every table of the guardian's database, as text."""
    time.sleep(0.5)  # the ledger writes in batches, at most 100 ms behind
    db = sqlite3.connect(stack.runtime / "guardian" / "guardian.db")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(
            repr(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"')
        )
    finally:
        db.close()


def test_a_retry_never_logs_the_start_of_an_echoed_key(
    stack_factory: Callable[..., Stack], fake: FakeOpenAI
) -> None:
    retries = '\n[HUB_LIMITS]\nretry_count = "1"\nretry_delay_sec = "0"\n[HUB_LIMITS_END]\n'
    stack = keyed_stack(stack_factory, fake, retries)
    # "HTTP 500: " and the padding put the key across character 120 of the retry's log line.
    for pad in (100, 105):
        message = f"{'x' * pad}{PROVIDER_KEY}"
        fake.behave(Behaviour(status=500, error_message=message), Behaviour())
        status, body = call_api(stack.url, "llm_complete", {"prompt": "hi"})
        assert status == 200, body
    logs = stack.logs()
    assert "asking again" in logs
    assert not leaked(logs), logs[-2000:]


def test_a_key_rotated_out_mid_call_is_still_redacted_everywhere(
    stack_factory: Callable[..., Stack], fake: FakeOpenAI
) -> None:
    stack = keyed_stack(stack_factory, fake)
    # The provider takes its time, then refuses the request echoing the key it was sent.
    fake.behave(Behaviour(status=400, hang_s=3, error_message=f"bad request for {PROVIDER_KEY}"))
    answer: dict[str, Any] = {}

    def call() -> None:
        answer["status"], answer["body"] = call_api(stack.url, "llm_complete", {"prompt": "hi"})

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.requests, "the call never reached the provider"
    # The key is rotated while the call is with the provider.
    (stack.dir / ".env").write_text(f"FAKE_PROVIDER_KEY={ROTATED_KEY}\n")
    reloaded = run_ctl(stack.runtime / "guardian" / "admin.sock", "config", "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    caller.join(timeout=30)
    assert answer.get("status", 0) >= 400, answer
    assert not leaked(json.dumps(answer["body"])), answer["body"]
    assert not leaked(stored_text(stack))
    assert not leaked(stack.logs())


async def test_a_background_task_error_reaches_status_redacted_whole_before_its_cut() -> None:
    """A supervised task's error text is shown by `status`: a key straddling its 200-character
    cut must not leave its start there."""
    failed = asyncio.Event()

    async def leaks() -> None:
        failed.set()
        raise RuntimeError(f"{'x' * 180}{PROVIDER_KEY}")

    tasks = TaskSet(redactor=Redactor([PROVIDER_KEY]), backoff_initial_s=30)
    logging.getLogger("sealgate.guardian.tasks").disabled = True
    try:
        tasks.start("leaky", leaks)
        await asyncio.wait_for(failed.wait(), 5)
        await asyncio.sleep(0.05)
        shown = tasks.stats()["leaky"]["last_error"]
    finally:
        await tasks.close()
        logging.getLogger("sealgate.guardian.tasks").disabled = False
    assert len(shown) <= 200
    assert PROVIDER_KEY[:6] not in shown  # the old cut kept "fake-s"
