"""A process of the stack killed in the middle of a stream, on the real stack.

- The guardian, with SIGKILL: the client gets a clean error event within seconds (not a hang,
  not a truncated success); the supervisor starts it again, which bills the call's
  reservation in full and audits it; every row written before the kill is still there.
- The sandbox, with SIGKILL: the guardian sees its link drop, aborts the provider request
  within a second, and bills what was consumed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.fakes.providers import FakeAnthropic
from tests.helpers import Stack
from tests.reliability.faults import WORDS, config, read_sse, slow_fake, wait_rows
from tests.security.stackdb import user_with_token

#: docs/RELIABILITY.md's "faults survived" counts these.
FAULTS_SURVIVED: list[str] = []


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    server = slow_fake()
    yield server
    server.stop()


def complete(stack: Stack, token: str) -> None:
    answer = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "claude-test", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_guardian_sigkill_mid_stream(
    stack_factory: Callable[..., Stack], fake: FakeAnthropic
) -> None:
    stack = stack_factory(config_text=config(fake))
    token = user_with_token(stack, "payer", "metered")
    complete(stack, token)
    before = wait_rows(stack, "SELECT * FROM {s}usage", 1)
    audit_before = wait_rows(stack, "SELECT * FROM {s}audit", 1)
    guardian = stack.pid_of("guardian")

    read = read_sse(
        stack.url, token, after_chunks=5, hook=lambda: os.kill(guardian, signal.SIGKILL)
    )
    # A clean error event, within seconds, and no "success" after it.
    assert read.errors and read.errors[-1]["code"] == "unavailable", read
    assert read.finished is None and not read.done, read
    assert 5 <= len(read.contents) < WORDS
    assert read.ended_after_s < 5, read.ended_after_s

    # The supervisor starts the guardian again; its start bills the crashed call in full.
    stack.wait_healthy(timeout=60)
    rows = wait_rows(stack, "SELECT * FROM {s}usage ORDER BY id", 2)
    assert rows[0] == before[0], "a row written before the kill changed or went away"
    assert [r["outcome"] for r in rows] == ["ok", "interrupted"], rows
    assert rows[1]["cost_usd"] > 0
    settled = wait_rows(stack, "SELECT * FROM {s}audit WHERE action = 'budget.settle'", 1)
    assert "never ended" in settled[0]["detail"]
    audit_after = wait_rows(stack, "SELECT * FROM {s}audit ORDER BY id", len(audit_before))
    assert audit_after[: len(audit_before)] == audit_before
    assert wait_rows(stack, "SELECT * FROM {s}reservations", 0) == []
    # and it serves again
    complete(stack, token)
    FAULTS_SURVIVED.append("guardian SIGKILL mid-stream")


def test_sandbox_sigkill_mid_stream(
    stack_factory: Callable[..., Stack], fake: FakeAnthropic
) -> None:
    stack = stack_factory(config_text=config(fake))
    token = user_with_token(stack, "payer", "metered")
    sandbox = stack.pid_of("sandbox")
    disconnects = fake.disconnects
    killed_at: list[float] = []

    def kill() -> None:
        os.kill(sandbox, signal.SIGKILL)
        killed_at.append(time.monotonic())

    read = read_sse(stack.url, token, after_chunks=5, hook=kill)
    assert 5 <= len(read.contents) < WORDS and not read.done
    # The guardian aborts the provider request within a second of losing the link.
    while fake.disconnects == disconnects:
        assert time.monotonic() - killed_at[0] < 1.0, "the upstream request is still open"
        time.sleep(0.01)
    rows = wait_rows(stack, "SELECT * FROM {s}usage", 1)
    assert len(rows) == 1 and rows[0]["outcome"] == "link_lost", rows
    assert rows[0]["output_tokens"] >= 5 and rows[0]["cost_usd"] > 0  # what was consumed
    assert wait_rows(stack, "SELECT * FROM {s}reservations", 0) == []
    stack.wait_healthy(timeout=60)  # the supervisor brought the sandbox back
    complete(stack, token)
    FAULTS_SURVIVED.append("sandbox SIGKILL mid-stream")
