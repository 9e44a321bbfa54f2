"""A soak of mixed load on the real stack: chat, streams, MCP sessions (Streamable HTTP and
SSE), logins and the operator CLI, all at once for `SEALGATE_SOAK_S` seconds (60 in
`make test`, 1,800 in `make soak`). Each process's RSS and open descriptors must level off
after warm-up: the last quarter's peak is compared with the second quarter's, with generous
bounds (no timing assertion tighter than an order of magnitude).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.e2e.mcp_client import mcp_session
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack, run_ctl
from tests.reliability.procstat import open_fds, rss_mb
from tests.security.common import provider_block
from tests.security.stackdb import user_with_token

SOAK_S = float(os.environ.get("SEALGATE_SOAK_S", "60"))
SAMPLE_S = max(1.0, SOAK_S / 60)
PASSWORD = "a long enough password"
#: docs/RELIABILITY.md's figures.
FIGURES: dict[str, object] = {}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text=" ".join(f"w{i}" for i in range(30)))
    server.event_delay_s = 0.001
    server.start()
    yield server
    server.stop()


async def test_mixed_load_levels_off(fake: FakeOpenAI, stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(config_text=provider_block(fake, keyed=False))
    token = user_with_token(stack, "soak", "user")
    admin = stack.runtime / "guardian" / "admin.sock"
    auth = {"Authorization": f"Bearer {token}"}
    chat_body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    pids = {"sandbox": stack.pid_of("sandbox"), "guardian": stack.pid_of("guardian")}
    samples: list[dict[str, float]] = []
    done: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    ends = time.monotonic() + SOAK_S

    async def repeat(name: str, action: Callable[[], object], pause: float) -> None:
        while time.monotonic() < ends:
            try:
                await action()  # type: ignore[misc]
                done[name] += 1
            except Exception as exc:  # counted and reported: the test fails on any
                failures[f"{name}: {type(exc).__name__}: {exc}"[:200]] += 1
            await asyncio.sleep(pause)

    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:

        async def chat() -> None:
            answer = await http.post("/v1/chat/completions", json=chat_body, headers=auth)
            assert answer.status_code == 200, answer.text

        async def stream() -> None:
            async with http.stream(
                "POST", "/v1/chat/completions", json={**chat_body, "stream": True}, headers=auth
            ) as answer:
                assert answer.status_code == 200
                lines = [line async for line in answer.aiter_lines()]
            assert "data: [DONE]" in lines

        async def walk_away() -> None:  # a client that leaves mid-stream
            async with http.stream(
                "POST", "/v1/chat/completions", json={**chat_body, "stream": True}, headers=auth
            ) as answer:
                async for _line in answer.aiter_lines():
                    break

        async def mcp(kind: str, mode: str) -> None:
            async with mcp_session(stack.url, kind, mode, headers=auth) as client:
                result = await client.call_tool("health_check", {})
                assert not result.is_error

        async def login() -> None:
            answer = await http.post("/auth/login", json={"username": "soak", "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            session = answer.cookies["sg_session"]
            out = await http.post("/auth/logout", headers={"Cookie": f"sg_session={session}"})
            assert out.status_code == 200, out.text
            http.cookies.clear()

        async def cli() -> None:
            done_ = await asyncio.to_thread(run_ctl, admin, "usage", "report")
            assert done_.returncode == 0, done_.stderr

        async def sample() -> None:
            while time.monotonic() < ends:
                row = {"t": SOAK_S - (ends - time.monotonic())}
                for name, pid in pids.items():
                    row[f"{name}_rss"] = rss_mb(pid)
                    row[f"{name}_fds"] = open_fds(pid)
                samples.append(row)
                await asyncio.sleep(SAMPLE_S)

        await asyncio.gather(
            sample(),
            *(repeat("chat", chat, 0.02) for _ in range(3)),
            *(repeat("stream", stream, 0.02) for _ in range(3)),
            repeat("walk away", walk_away, 0.1),
            repeat("mcp http", lambda: mcp("http", "legacy"), 0.2),
            repeat("mcp stateless", lambda: mcp("http", "auto"), 0.2),
            repeat("mcp sse", lambda: mcp("sse", "legacy"), 0.5),
            repeat("login", login, 3.5),  # logins are limited to 20 a minute per address
            repeat("cli", cli, 1.0),
        )

    assert not failures, failures.most_common(5)
    assert set(done) >= {"chat", "stream", "mcp http", "mcp sse", "login", "cli"}, done
    quarter = max(1, len(samples) // 4)
    warm, last = samples[quarter : 2 * quarter], samples[-quarter:]
    report: dict[str, object] = {"seconds": SOAK_S, "operations": dict(done)}
    for name in pids:
        rss_warm = statistics.mean(s[f"{name}_rss"] for s in warm)
        rss_last = max(s[f"{name}_rss"] for s in last)
        fds_warm = max(s[f"{name}_fds"] for s in warm)
        fds_last = max(s[f"{name}_fds"] for s in last)
        report[name] = {
            "rss_mb_start": round(samples[0][f"{name}_rss"]),
            "rss_mb_after_warmup": round(rss_warm),
            "rss_mb_peak_last_quarter": round(rss_last),
            "fds_after_warmup": fds_warm,
            "fds_peak_last_quarter": fds_last,
        }
        # levelled off: no steady climb after warm-up (generous: allocator noise, caches)
        assert rss_last < rss_warm * 1.5 + 30, (name, rss_warm, rss_last)
        assert fds_last < fds_warm + 60, (name, fds_warm, fds_last)
    FIGURES.update(report)
    print(f"\nsoak: {json.dumps(report)}")
    assert stack.process is not None and stack.process.poll() is None
    assert "Traceback" not in stack.logs(), stack.logs()[-3000:]
