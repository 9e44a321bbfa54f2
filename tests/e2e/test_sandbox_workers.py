"""`HUB_SANDBOX_WORKERS=2` (issue 33 item 3): two sandbox processes on one port, each with
its own guardian link, one set of limits in the guardian. Every request here opens a
connection of its own, so the kernel spreads them over both processes (SO_REUSEPORT); which
process served is read from the guardian's `status` (each link's pid and requests), never
from a header. MCP sessions on the handshake revision (2025-11-25) and the legacy `/sse`
transport work wherever a request lands; a per-minute limit counts across both; a killed
process is restarted on its own while the other serves."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack, run_ctl
from tests.security.stackdb import user_with_token

ADMIN = "sg_workers-bootstrap-0123456789abcdef"
REPLY = "an answer from either process"
PER_MINUTE = 6
WORKERS = 2
BODY = {"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]}
CONFIG = """
[HUB]
max_streams_per_principal = "200"
[HUB_END]
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
[LLM_PROVIDER.fake_END]
[ROLE.limited]
requests_per_min = "{per_minute}"
[ROLE.limited_END]
"""
#: No kept-alive connection: each request is a new connection, which the kernel may hand
#: to either process.
FRESH = httpx2.Limits(max_keepalive_connections=0)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text=REPLY).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(fake: FakeOpenAI) -> Iterator[Stack]:
    made = Stack(
        env={"SEALGATE_BOOTSTRAP_TOKEN": ADMIN, "HUB_SANDBOX_WORKERS": str(WORKERS)},
        config_text=CONFIG.format(base=fake.base, per_minute=PER_MINUTE),
    )
    try:
        made.start()
        wait_linked(made, WORKERS)
        yield made
    except BaseException:
        print(made.logs()[-6000:])
        raise
    finally:
        made.cleanup()


def admin_socket(stack: Stack) -> Path:
    return stack.runtime / "guardian" / "admin.sock"


def linked(stack: Stack) -> dict[int, int]:
    """The guardian's view: each linked sandbox process's pid and the requests it sent."""
    done = run_ctl(admin_socket(stack), "--json", "status")
    assert done.returncode == 0, done.stderr
    return {seen["pid"]: seen["calls"] for seen in json.loads(done.stdout)["sandboxes"]}


def wait_linked(stack: Stack, count: int, timeout: float = 30, without: int = 0) -> dict[int, int]:
    """Until `count` sandbox processes are linked (none of them `without`), all of them the
    supervisor's children."""
    deadline = time.monotonic() + timeout
    while True:
        seen = linked(stack)
        if (
            len(seen) == count
            and without not in seen
            and set(seen) == set(stack.pids_of("sandbox"))
        ):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"linked {seen}, children {stack.pids_of('sandbox')}")
        time.sleep(0.1)


def grown(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {pid: after[pid] - before.get(pid, 0) for pid in after}


def completions(stack: Stack, token: str, count: int) -> list[int]:
    """`count` chat completions at once, each on a connection of its own."""

    async def run() -> list[int]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            timeout=60, headers=headers, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client:
            answers = await asyncio.gather(
                *(client.post(f"{stack.url}/v1/chat/completions", json=BODY) for _ in range(count))
            )
        return [answer.status_code for answer in answers]

    return asyncio.run(run())


class Seen:
    """Every HTTP status a client met, to show no "session not found" was among them."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    async def hook(self, response: Any) -> None:
        self.statuses.append(response.status_code)


def test_status_shows_each_sandbox_process_linked(stack: Stack) -> None:
    pids = stack.pids_of("sandbox")
    assert len(pids) == WORKERS and len(set(pids)) == WORKERS
    assert set(linked(stack)) == set(pids)
    text = run_ctl(admin_socket(stack), "status").stdout
    assert f"connected ({WORKERS} connections)" in text
    for pid in pids:
        assert f"process pid {pid}, " in text
    logs = stack.logs()
    assert "sandbox-1 started (pid" in logs and "sandbox-2 started (pid" in logs


def test_requests_land_on_both_processes(stack: Stack) -> None:
    before = linked(stack)
    statuses = completions(stack, ADMIN, 40)
    assert statuses == [200] * 40
    spread = grown(before, linked(stack))
    assert len(spread) == WORKERS and all(n >= 5 for n in spread.values()), spread


def test_an_mcp_session_is_served_by_either_process(stack: Stack) -> None:
    before = linked(stack)
    seen = Seen()

    async def run() -> None:
        async with httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60,
            limits=FRESH,
            event_hooks={"response": [seen.hook]},
        ) as http:
            transport = streamable_http_client(f"{stack.url}/mcp", http_client=http)
            async with Client(transport, mode="legacy") as client:
                assert client.session.protocol_version == "2025-11-25"
                for i in range(20):
                    answer = await client.call_tool("llm_complete", {"prompt": f"hello {i}"})
                    assert not answer.is_error and answer.content[0].text == REPLY

    asyncio.run(run())
    assert len(seen.statuses) >= 22 and 404 not in seen.statuses, seen.statuses
    spread = grown(before, linked(stack))
    assert all(n >= 3 for n in spread.values()), spread


def test_the_legacy_sse_transport_reaches_its_stream_from_either_process(stack: Stack) -> None:
    before = linked(stack)
    seen = Seen()

    def fresh_client(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout,
            auth=auth,
            limits=FRESH,
            event_hooks={"response": [seen.hook]},
        )

    async def run() -> None:
        transport = sse_client(
            f"{stack.url}/sse",
            headers={"Authorization": f"Bearer {ADMIN}"},
            httpx_client_factory=fresh_client,
        )
        async with Client(transport, mode="legacy") as client:
            for i in range(20):
                answer = await client.call_tool("llm_complete", {"prompt": f"sse {i}"})
                assert not answer.is_error and answer.content[0].text == REPLY

    asyncio.run(asyncio.wait_for(run(), 120))
    assert len(seen.statuses) >= 22 and set(seen.statuses) == {200, 202}, seen.statuses
    spread = grown(before, linked(stack))
    assert all(n >= 3 for n in spread.values()), spread


def test_a_per_minute_limit_lets_exactly_that_many_through_across_both(stack: Stack) -> None:
    token = user_with_token(stack, "limited", "limited")
    before = linked(stack)
    statuses = completions(stack, token, 2 * PER_MINUTE + 4)
    assert statuses.count(200) == PER_MINUTE, statuses
    assert statuses.count(429) == PER_MINUTE + 4, statuses
    assert all(n > 0 for n in grown(before, linked(stack)).values())


def test_a_killed_process_is_restarted_while_the_other_serves(stack: Stack) -> None:
    victim, survivor = stack.pids_of("sandbox")
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while victim in linked(stack):  # its socket and link are gone with it
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert completions(stack, ADMIN, 20) == [200] * 20
    seen = wait_linked(stack, WORKERS, without=victim)
    assert survivor in seen
    assert "exited with signal 9" in stack.logs()
    before = seen
    assert completions(stack, ADMIN, 40) == [200] * 40
    assert all(n >= 5 for n in grown(before, linked(stack)).values())


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "HUB_SANDBOX_WORKERS=0: must be a whole number from 1 to 64"),
        ("17", "max_sandbox_connections is 16; raise it to at least 17"),
    ],
)
def test_a_bad_number_of_workers_stops_the_supervisor_before_anything_starts(
    value: str, says: str
) -> None:
    refused = Stack(env={"HUB_SANDBOX_WORKERS": value})
    try:
        refused.start(wait=False)
        assert refused.process is not None
        assert refused.process.wait(timeout=30) == 78
        logs = refused.logs()
        assert "cannot start: HUB_SANDBOX_WORKERS=" in logs and says in logs, logs
        assert "guardian started" not in logs and "sandbox started" not in logs
    finally:
        refused.cleanup()


def test_the_processes_stop_together_not_in_turn() -> None:
    """Each process holding event streams waits out its grace period (3 s) when stopped; in
    turn, four would take 12 s, past Docker's 10 s before SIGKILL."""
    four = Stack(env={"HUB_SANDBOX_WORKERS": "4"})
    try:
        four.start()
        wait_linked(four, 4)

        async def hold_then_stop() -> float:
            writers = []
            for _ in range(16):  # spread over the four by their addresses' hash
                reader, writer = await asyncio.open_connection("127.0.0.1", four.port)
                writer.write(b"GET /sse/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                await writer.drain()
                await asyncio.wait_for(reader.readuntil(b"event: endpoint"), 10)
                writers.append(writer)
            started = time.monotonic()
            assert await asyncio.to_thread(four.stop, 60) == 0
            for writer in writers:
                writer.close()
            return time.monotonic() - started

        took = asyncio.run(hold_then_stop())
        assert took < 7, f"stopping took {took:.1f} s"
    finally:
        four.cleanup()
