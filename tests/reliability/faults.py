"""What the fault tests share: a metered stack on a slow fake provider, an SSE reader that
keeps what arrived, and the guardian database read straight from disk."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fakes.providers import FakeAnthropic
from tests.helpers import Stack
from tests.security.stackdb import Backend
from tests.security.test_ledger_endings import TEXT, WORDS, config

__all__ = ["TEXT", "WORDS", "SseRead", "config", "read_sse", "slow_fake", "wait_rows"]


def slow_fake(delay_s: float = 0.05) -> FakeAnthropic:
    """Forty words, one event every `delay_s`: a stream lasts long enough to break."""
    fake = FakeAnthropic(name="ant", reply_text=TEXT)
    fake.event_delay_s = delay_s
    return fake.start()


@dataclass
class SseRead:
    contents: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    finished: str | None = None  # the finish_reason of the last chunk, if one came
    ended_after_s: float = 0.0  # seconds from the `after_chunks` hook to the stream's end


def read_sse(
    url: str, token: str, *, after_chunks: int = 0, hook: Any = None, timeout: float = 30
) -> SseRead:
    """Stream a chat completion; call `hook()` once `after_chunks` contents arrived."""
    body = {"model": "claude-test", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    read = SseRead()
    hooked_at = None
    with (
        httpx.Client(base_url=url, timeout=timeout) as client,
        client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        try:
            for line in answer.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    read.done = True
                    continue
                event = json.loads(data)
                if "error" in event:
                    read.errors.append(event["error"])
                    continue
                for choice in event.get("choices", []):
                    if choice.get("delta", {}).get("content"):
                        read.contents.append(choice["delta"]["content"])
                    if choice.get("finish_reason"):
                        read.finished = choice["finish_reason"]
                if hook is not None and hooked_at is None and len(read.contents) >= after_chunks:
                    hook()
                    hooked_at = time.monotonic()
        except httpx.HTTPError:
            pass  # the connection itself was cut (the sandbox died): what arrived is kept
    if hooked_at is not None:
        read.ended_after_s = time.monotonic() - hooked_at
    return read


def wait_rows(
    stack: Stack, sql: str, count: int, timeout: float = 20, backend: Backend | None = None
) -> list[dict[str, Any]]:
    backend = backend or Backend("sqlite")
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = backend.rows(stack, sql)
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(
        f"{len(rows)} row(s) of {count} after {timeout} s: {rows}\n{stack.logs()[-3000:]}"
    )
