"""Attack surface: the usage figures a provider reports. A provider (or a proxy before it)
is untrusted input; what it says a call consumed is believed only within what the request
allows.

The attacks: one reply reporting about 10^29 tokens stopped every later usage row of that
guardian, hung the call 120 s, charged the budget about 1e23 USD, and left a guardian that
ignored SIGTERM; a reply with no usage, or negative, fractional or string usage, was billed
0 tokens and 0 USD, so a budgeted user got unlimited calls. Against a real guardian, on
SQLite and PostgreSQL, with the fake provider reporting the usage each test sets; and the
ledger against a real database for a row the database refuses.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from guardian.ledger import UsageLedger
from guardian.storage import Storage, open_storage
from guardian.storage.base import Reservation, UsageRow
from protocol.client import RPCClient
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox
from tests.security.stackdb import BACKENDS, Backend, ctl, make_backend, user_with_token

TEXT = "Seven words of reply text, counted here."
PROMPT = "how many tokens is this?"
MAX_TOKENS = 50
#: Usage that is no report at all: missing, negative, fractional, strings.
NOT_REPORTS: list[Any] = [
    None,
    {"prompt_tokens": -5, "completion_tokens": -1, "total_tokens": -6},
    {"prompt_tokens": 10.5, "completion_tokens": 2.5, "total_tokens": 13.0},
    {"prompt_tokens": "10", "completion_tokens": "6", "total_tokens": "16"},
]
ABSURD = 10**29


def config(fake: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.openai]
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "gpt-test"
timeout_sec = "20"
[LLM_PROVIDER.openai_END]
[MODEL.gpt-test]
provider = "openai"
cost_input_per_1m = "3"
cost_output_per_1m = "15"
max_output_tokens = "512"
[MODEL.gpt-test_END]
[MODEL.embed-test]
provider = "openai"
cost_input_per_1m = "1"
cost_output_per_1m = "0"
[MODEL.embed-test_END]
[ROLE.metered]
monthly_budget_usd = "100"
[ROLE.metered_END]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="openai", reply_text=TEXT)
    server.event_delay_s = 0.0
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


@pytest.fixture
def guardian(fake: FakeOpenAI, backend: Backend) -> Iterator[GuardianProcess]:
    fake.default = Behaviour()
    fake._queue.clear()
    process = GuardianProcess(config_text=config(fake), env=backend.env).start()
    yield process
    process.stop()


@pytest.fixture
async def rpc(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await rpc_as_sandbox(guardian.socket_path)
    client.call_timeout = 15  # the attack hung a call 120 s
    yield client
    await client.close()


@pytest.fixture
def token(guardian: GuardianProcess) -> str:
    return user_with_token(guardian, "payer", "metered")


def params(token: str, **extra: Any) -> dict[str, Any]:
    return {
        "caller": {"ip": "10.1.2.3", "user_agent": "t", "credential": token},
        "tool": "llm_complete",
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def usage_rows(guardian: GuardianProcess, backend: Backend, count: int) -> list[dict[str, Any]]:
    """The payer's usage rows, once `count` are written, oldest first."""
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = backend.rows(
            guardian, "SELECT * FROM {s}usage WHERE principal = 'payer' ORDER BY id"
        )
        if len(rows) >= count:
            break
        time.sleep(0.05)
    assert len(rows) == count, (rows, guardian.logs()[-3000:])
    return rows


def request_bound() -> tuple[int, int]:
    """Bounds of what SealGate counts for PROMPT: at least its bytes, at most a little framing."""
    size = len(PROMPT.encode())
    return size, size + 200


def assert_estimated(row: dict[str, Any], output: int) -> None:
    low, high = request_bound()
    assert row["estimated"] == 1 and row["clamped"] == 0, row
    assert low <= row["input_tokens"] <= high, row
    assert row["output_tokens"] == output, row
    assert row["cost_usd"] == pytest.approx(
        (row["input_tokens"] * 3 + row["output_tokens"] * 15) / 1e6
    )
    assert row["cost_usd"] > 0


# item 4: out-of-range figures ------------------------------------------------------------------
async def test_an_absurd_usage_figure_is_clamped_and_blocks_nothing(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str, fake: FakeOpenAI
) -> None:
    absurd = {"prompt_tokens": ABSURD, "completion_tokens": ABSURD, "total_tokens": 2 * ABSURD}
    fake.behave(Behaviour(usage=absurd), Behaviour(usage=absurd))
    started = time.monotonic()
    answer = await rpc.call("llm.complete", params(token))
    assert time.monotonic() - started < 10
    assert answer["usage"]["output_tokens"] == MAX_TOKENS and answer["usage"]["clamped"]
    async with rpc.stream("llm.stream", params(token)) as stream:
        assert "".join([chunk["text"] async for chunk in stream]) == TEXT
    # a plain call after them is written too: nothing is blocked
    await rpc.call("llm.complete", params(token))
    clamped, streamed, plain = usage_rows(guardian, backend, 3)
    low, high = request_bound()
    for row in (clamped, streamed):
        assert row["clamped"] == 1 and row["outcome"] == "ok", row
        assert low <= row["input_tokens"] <= high and row["output_tokens"] == MAX_TOKENS
        assert row["cost_usd"] < 0.01  # the call's maximum, not 1e23 USD
    assert (plain["clamped"], plain["input_tokens"], plain["output_tokens"]) == (0, 10, 6)
    audits = backend.rows(guardian, "SELECT * FROM {s}audit WHERE outcome = 'clamped'")
    assert len(audits) == 2 and "more tokens than the request allows" in audits[0]["detail"]
    assert backend.rows(guardian, "SELECT * FROM {s}reservations") == []
    # bounded figures are stored: the operator's status shows no refused row
    ledger = json.loads(ctl(guardian, "status", "--json"))["background"]["usage_ledger"]
    assert (ledger["refused"], ledger["pending"], ledger["dropped"]) == (0, 0, 0)
    # and the guardian still stops when asked
    assert guardian.process is not None
    guardian.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(guardian.process.wait, 15) == 0


# item 5: missing or malformed figures ------------------------------------------------------------
async def test_a_reply_without_usable_usage_is_billed_what_sealgate_counts(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str, fake: FakeOpenAI
) -> None:
    for usage in NOT_REPORTS:
        fake.behave(Behaviour(usage=usage))
        answer = await rpc.call("llm.complete", params(token))
        assert answer["usage"]["estimated"] and answer["cost_usd"] > 0, (usage, answer)
    for row in usage_rows(guardian, backend, len(NOT_REPORTS)):
        assert_estimated(row, len(TEXT.encode()))


async def test_a_stream_without_usable_usage_is_billed_what_sealgate_counts(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str, fake: FakeOpenAI
) -> None:
    for usage in NOT_REPORTS:
        fake.behave(Behaviour(usage=usage))
        async with rpc.stream("llm.stream", params(token)) as stream:
            assert "".join([chunk["text"] async for chunk in stream]) == TEXT
    for row in usage_rows(guardian, backend, len(NOT_REPORTS)):
        assert_estimated(row, len(TEXT.encode()))


async def test_embeddings_without_usable_usage_are_billed_what_sealgate_counts(
    guardian: GuardianProcess, backend: Backend, rpc: RPCClient, token: str, fake: FakeOpenAI
) -> None:
    texts = ["one text to embed", "and another"]
    for usage in NOT_REPORTS:
        fake.behave(Behaviour(usage=usage))
        call = {"caller": params(token)["caller"], "model": "embed-test", "input": texts}
        answer = await rpc.call("llm.embed", call)
        assert len(answer["data"]) == 2 and answer["usage"]["estimated"], answer
    size = sum(len(t.encode()) for t in texts)
    for row in usage_rows(guardian, backend, len(NOT_REPORTS)):
        assert row["estimated"] == 1 and row["output_tokens"] == 0, row
        assert size <= row["input_tokens"] <= size + 200, row
        assert row["cost_usd"] == pytest.approx(row["input_tokens"] / 1e6)


# item 4: a row the database refuses --------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        store = await open_storage(None, tmp_path / "guardian.db")
    else:
        store = await open_storage(request.getfixturevalue("pg_database"), tmp_path / "x.db")
    yield store
    await store.close()


def _row(principal: str, tokens: int) -> UsageRow:
    return UsageRow(
        ts=time.time(),
        principal=principal,
        tool="llm_complete",
        provider="openai",
        model="gpt-test",
        input_tokens=tokens,
        output_tokens=1,
        cost_usd=0.001,
        latency_ms=1.0,
        outcome="ok",
        fallback_path="[]",
    )


def _held(principal: str) -> Reservation:
    return Reservation(
        id=uuid.uuid4().hex,
        principal=principal,
        window_start=0.0,
        amount=0.5,
        created_at=time.time(),
        owner="me",
        shared=False,
        tool="llm_complete",
        provider="openai",
        model="gpt-test",
        counted=False,
        input_tokens=100,
        output_tokens=50,
    )


async def test_a_row_the_database_refuses_is_isolated_and_audited(storage: Storage) -> None:
    """Figures are bounded before they reach the ledger; should one still be out of range,
    the database's refusal costs that row alone, and shows."""
    ledger = UsageLedger(storage)
    holds = {name: _held(name) for name in ("before", "bad", "after")}
    for held in holds.values():
        await storage.reserve(held, None)
    for name, tokens in (("before", 5), ("bad", ABSURD), ("after", 7)):
        ledger.record(_row(name, tokens), reservation=holds[name])
    await asyncio.wait_for(ledger.flush(), 10)
    rows = await storage.fetch(storage.q("SELECT principal FROM {s}usage ORDER BY principal"))
    assert [r["principal"] for r in rows] == ["after", "before"]
    assert ledger.pending == 0
    stats = ledger.stats()
    assert stats["refused"] == 1 and "'bad'" in stats["last_refused"]
    (audit,) = await storage.audit_since(0, user="bad")
    assert (audit["action"], audit["outcome"]) == ("ledger.refused", "refused")
    assert "next start bills the call's maximum" in audit["detail"]
    # its reservation stays, so the next start bills the call at its maximum
    left = await storage.fetch(storage.q("SELECT principal FROM {s}reservations"))
    assert [r["principal"] for r in left] == ["bad"]
    # later rows are not blocked
    ledger.record(_row("later", 3))
    await asyncio.wait_for(ledger.flush(), 10)
    assert len(await storage.fetch(storage.q("SELECT id FROM {s}usage"))) == 3
