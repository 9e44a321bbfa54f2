"""Every way an LLM call ends writes exactly one usage row with what was consumed, settles its
budget reservation, and audits the ending; none is recorded as a success.

The attack: read a stream to 39 of its 40 chunks and walk away (or cut the guardian link,
or time the provider out). Such calls used to write no usage row and add no spend, so a
caller could read almost everything for free, past any budget.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.errors import ProviderError, Timeout
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeAnthropic
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess, Stack
from tests.security.stackdb import BACKENDS, Backend, make_backend, user_with_token

WORDS = 40
TEXT = " ".join(f"w{index:02d}" for index in range(WORDS))


def config(fake: FakeAnthropic) -> str:
    return f"""
[LLM_PROVIDER.ant]
api = "anthropic"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "claude-test"
timeout_sec = "20"
[LLM_PROVIDER.ant_END]
[LLM_PROVIDER.slow]
api = "anthropic"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "claude-slow"
timeout_sec = "1"
[LLM_PROVIDER.slow_END]
[MODEL.claude-test]
provider = "ant"
cost_input_per_1m = "3"
cost_output_per_1m = "15"
max_output_tokens = "512"
[MODEL.claude-test_END]
[MODEL.claude-slow]
provider = "slow"
cost_input_per_1m = "3"
cost_output_per_1m = "15"
max_output_tokens = "512"
[MODEL.claude-slow_END]
[ROLE.metered]
monthly_budget_usd = "100"
[ROLE.metered_END]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(name="ant", reply_text=TEXT)
    server.event_delay_s = 0.02
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


@pytest.fixture
def guardian(fake: FakeAnthropic, backend: Backend) -> Iterator[GuardianProcess]:
    fake.default = Behaviour()
    fake._queue.clear()
    process = GuardianProcess(config_text=config(fake), env=backend.env).start()
    yield process
    process.stop()


async def connect(guardian: GuardianProcess) -> RPCClient:
    async def channel() -> SocketChannel:
        return await open_unix_channel(str(guardian.socket_path))

    client = RPCClient(channel, client_name="sandbox", hello_params=LOOPBACK_SANDBOX_HELLO)
    client.start()
    assert await client.wait_connected(5)
    return client


@pytest.fixture
async def rpc(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await connect(guardian)
    yield client
    await client.close()


@pytest.fixture
def token(guardian: GuardianProcess) -> str:
    return user_with_token(guardian, "payer", "metered")


def params(token: str, **extra: Any) -> dict[str, Any]:
    return {
        "caller": {"ip": "10.1.2.3", "user_agent": "t", "credential": token},
        "tool": "llm_complete",
        "prompt": "tell me forty words",
        **extra,
    }


def the_ending(guardian: GuardianProcess, backend: Backend) -> dict[str, Any]:
    """The call's one usage row, once written; checks that it settled its reservation and
    that no second row follows."""
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = backend.rows(guardian, "SELECT * FROM {s}usage WHERE principal = 'payer'")
        if rows:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    rows = backend.rows(guardian, "SELECT * FROM {s}usage WHERE principal = 'payer'")
    assert len(rows) == 1, rows
    assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
    if backend.name == "postgresql":  # the shared budget counter holds exactly what was billed
        counter = backend.rows(  # budgets are kept by user id
            guardian,
            "SELECT c.value FROM {s}counters c JOIN {s}users u ON c.key = 'spend:' || u.id"
            " WHERE u.name = 'payer'",
        )
        assert counter[0]["value"] == pytest.approx(rows[0]["cost_usd"] or 0.0, abs=1e-9)
    return rows[0]


def audited(guardian: GuardianProcess, backend: Backend, outcome: str) -> list[dict[str, Any]]:
    return backend.rows(
        guardian,
        f"SELECT * FROM {{s}}audit WHERE principal = 'payer' AND outcome = '{outcome}'",
    )


async def read_chunks(stream: Any, count: int) -> int:
    seen = 0
    async for _chunk in stream:
        seen += 1
        if seen == count:
            break
    return seen


async def test_a_stream_read_to_the_end_is_one_ok_row(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str
) -> None:
    async with rpc.stream("llm.stream", params(token)) as stream:
        chunks = [chunk async for chunk in stream]
    assert len(chunks) == WORDS
    row = the_ending(guardian, backend)
    assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", 12, 7)
    assert row["cost_usd"] == pytest.approx((12 * 3 + 7 * 15) / 1e6)


async def test_a_stream_abandoned_at_39_of_40_is_billed_as_cancelled(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str
) -> None:
    async with rpc.stream("llm.stream", params(token)) as stream:
        assert await read_chunks(stream, WORDS - 1) == WORDS - 1
    # leaving the block sent `cancel`
    row = the_ending(guardian, backend)
    assert row["outcome"] == "cancelled"
    assert row["input_tokens"] == 12  # reported by the provider before the text
    assert row["output_tokens"] >= WORDS - 1  # bounded from the text that arrived
    assert row["cost_usd"] > 0
    assert len(audited(guardian, backend, "cancelled")) == 1


async def test_a_lost_guardian_link_mid_stream_is_billed_as_link_lost(
    guardian: GuardianProcess, backend: Backend, token: str
) -> None:
    client = await connect(guardian)
    stream = client.stream("llm.stream", params(token))
    assert await read_chunks(stream, 20) == 20
    await client.close()  # the sandbox's link drops: no cancel, just gone
    row = the_ending(guardian, backend)
    assert row["outcome"] == "link_lost"
    assert row["output_tokens"] >= 20 and row["cost_usd"] > 0
    assert len(audited(guardian, backend, "link_lost")) == 1


async def test_a_provider_error_is_one_unbilled_error_row(
    guardian: GuardianProcess,
    backend: Backend,
    rpc: RPCClient,
    token: str,
    fake: FakeAnthropic,
) -> None:
    fake.behave(Behaviour(status=500))
    with pytest.raises(ProviderError):
        await rpc.call("llm.complete", params(token))
    row = the_ending(guardian, backend)
    assert row["outcome"] == "provider_error"
    assert row["cost_usd"] == 0 and row["output_tokens"] == 0
    assert len(audited(guardian, backend, "provider_error")) == 1


async def test_a_timeout_is_billed_conservatively(
    guardian: GuardianProcess,
    backend: Backend,
    rpc: RPCClient,
    token: str,
    fake: FakeAnthropic,
) -> None:
    """The provider got the request and never answered: it may have done the work."""
    fake.behave(Behaviour(hang_s=2))
    with pytest.raises(Timeout):
        await rpc.call("llm.complete", params(token, model="claude-slow", max_tokens=100))
    row = the_ending(guardian, backend)
    assert (row["outcome"], row["provider"], row["output_tokens"]) == ("timeout", "slow", 100)
    assert row["cost_usd"] > 100 * 15 / 1e6
    assert len(audited(guardian, backend, "timeout")) == 1


async def test_a_shutdown_mid_stream_is_billed_as_shutdown(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str
) -> None:
    stream = rpc.stream("llm.stream", params(token))
    assert await read_chunks(stream, 10) == 10
    assert guardian.process is not None
    guardian.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(guardian.process.wait, 15) == 0
    if backend.name == "sqlite":
        row = the_ending(guardian, backend)
    else:
        rows = backend.rows(guardian, "SELECT * FROM {s}usage WHERE principal = 'payer'")
        assert len(rows) == 1
        row = rows[0]
        assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
    assert row["outcome"] == "shutdown"
    assert row["output_tokens"] >= 10 and row["cost_usd"] > 0
    assert len(audited(guardian, backend, "shutdown")) == 1


async def test_a_crash_mid_call_is_billed_in_full_at_the_next_start(
    guardian: GuardianProcess,
    backend: Backend,
    rpc: RPCClient,
    token: str,
    fake: FakeAnthropic,
) -> None:
    fake.behave(Behaviour(hang_s=3))
    call = asyncio.ensure_future(rpc.call("llm.complete", params(token, max_tokens=200)))
    deadline = time.monotonic() + 10
    while not backend.rows(guardian, "SELECT * FROM {s}reservations"):
        assert time.monotonic() < deadline, "no reservation was written before the call left"
        await asyncio.sleep(0.02)
    held = backend.rows(guardian, "SELECT * FROM {s}reservations")[0]
    assert held["principal"] == "payer" and held["amount"] > 200 * 15 / 1e6
    assert guardian.process is not None
    guardian.process.kill()
    guardian.process.wait(10)
    call.cancel()
    assert backend.rows(guardian, "SELECT * FROM {s}usage") == []
    guardian.start()  # the same replica starts again
    row = the_ending(guardian, backend)
    assert (row["outcome"], row["estimated"], row["output_tokens"]) == ("interrupted", 1, 200)
    assert row["input_tokens"] == held["input_tokens"] > 0
    assert row["cost_usd"] == pytest.approx(held["amount"])
    settled = backend.rows(guardian, "SELECT * FROM {s}audit WHERE action = 'budget.settle'")
    assert len(settled) == 1 and "never ended" in settled[0]["detail"]
    assert "billed 1 call(s) interrupted by a stopped guardian" in guardian.logs()


async def test_an_http_client_that_walks_away_at_39_of_40_is_billed(
    stack_factory: Callable[..., Stack], fake: FakeAnthropic
) -> None:
    """The whole stack: the client drops the HTTP stream, the sandbox cancels the call."""
    stack = stack_factory(config_text=config(fake))
    token = user_with_token(stack, "payer", "metered")
    body = {"model": "claude-test", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    headers = {"Authorization": f"Bearer {token}"}
    seen = 0
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=30, headers=headers) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as answer,
    ):
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("data: {") and '"content":"w' in line.replace(" ", ""):
                seen += 1
                if seen == WORDS - 1:
                    break
    assert seen == WORDS - 1
    backend = Backend("sqlite")
    deadline = time.monotonic() + 10
    while not (rows := backend.rows(stack, "SELECT * FROM {s}usage")):
        assert time.monotonic() < deadline, stack.logs()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    rows = backend.rows(stack, "SELECT * FROM {s}usage")
    assert len(rows) == 1 and rows[0]["outcome"] == "cancelled", rows
    assert rows[0]["output_tokens"] >= WORDS - 1 and rows[0]["cost_usd"] > 0
    assert backend.rows(stack, "SELECT * FROM {s}reservations") == []
