"""The call path's fallback, retry, key and budget matrix, in-process on the in-memory
outbound (`guardian.calls.memory_outbound`): the real router, plan, layers and meter, no
socket. Each row scripts what the providers answer and checks where the call went, with
which key, what the caller got, and the one ledger row it wrote. The end-to-end suites
(tests/e2e, tests/security) prove the same through the real processes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from guardian.calls.costs import input_token_bound
from guardian.calls.keys import KeyRotation
from guardian.calls.memory_outbound import MemoryOutbound, Reply
from guardian.calls.router import Router
from guardian.identity.principal import Principal
from guardian.ledger import UsageLedger
from guardian.limits import Limits
from guardian.redact import Redactor
from guardian.secrets import Secret, Secrets
from guardian.snapshot import Snapshot
from guardian.storage.base import Reservation
from protocol.errors import (
    BudgetExceeded,
    ProviderError,
    RateLimited,
    RPCError,
    Timeout,
)
from protocol.pyfun import RoleConfig, parse

KEYS = {
    "P0_KEY": "key-p0-first-0123456789",
    "P0_KEY_2": "key-p0-second-0123456789",
    "P1_KEY": "key-p1-0123456789",
    "P2_KEY": "key-p2-0123456789",
}


def config_text(retry_count: int = 0, rpm: int | None = None) -> str:
    rate = f'requests_per_min = "{rpm}"\n' if rpm else ""
    return f"""
[HUB_LIMITS]
retry_count = "{retry_count}"
retry_delay_sec = "0"
[HUB_LIMITS_END]
[LLM_PROVIDER.p0]
api = "openai"
base_url = "http://127.0.0.1:9/p0"
allow_insecure = "true"
env_key = "P0_KEY, P0_KEY_2"
default_model = "m0"
fallback_to = "p1"
timeout_sec = "5"
[LLM_PROVIDER.p0_END]
[LLM_PROVIDER.p1]
api = "openai"
base_url = "http://127.0.0.1:9/p1"
allow_insecure = "true"
env_key = "P1_KEY"
default_model = "m1"
fallback_to = "p2"
timeout_sec = "5"
[LLM_PROVIDER.p1_END]
[LLM_PROVIDER.p2]
api = "openai"
base_url = "http://127.0.0.1:9/p2"
allow_insecure = "true"
env_key = "P2_KEY"
default_model = "m2"
timeout_sec = "5"
[LLM_PROVIDER.p2_END]
[MODEL.m0]
provider = "p0"
cost_input_per_1m = "1.00"
cost_output_per_1m = "2.00"
max_output_tokens = "100"
{rate}[MODEL.m0_END]
[TOOL.chat]
provider_type = "llm"
default_provider = "p0"
timeout_sec = "20"
[TOOL.chat_END]
"""


def ok(text: str = "hello", usage: tuple[int, int] | None = (5, 3)) -> Reply:
    body: dict[str, Any] = {
        "model": "served",
        "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return Reply(body=body)


def status(code: int) -> Reply:
    return Reply(status=code, body={"error": {"message": f"status {code}"}})


TIMEOUT = Reply(fail="timeout")
CONNECTION = Reply(fail="connection")


def chunk(text: str) -> str:
    return json.dumps({"model": "served", "choices": [{"delta": {"content": text}}]})


USAGE_EVENT = json.dumps(
    {
        "model": "served",
        "choices": [{"delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
)


def streamed(*events: str) -> Reply:
    return Reply(events=events)


class _Store:
    """Storage stand-in: keeps reservations; yields to the loop as a real one does."""

    kind = "sqlite"

    def __init__(self) -> None:
        self.reserved: list[Reservation] = []

    async def reserve(
        self, held: Reservation, budget: float | None, *, alone: bool = False
    ) -> float | None:
        await asyncio.sleep(0)
        self.reserved.append(held)
        return None


@dataclass
class World:
    router: Router
    outbound: MemoryOutbound
    ledger: UsageLedger
    store: _Store
    chunks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> list[Any]:
        return [entry.usage for entry in self.ledger._rows]

    def sent(self) -> list[tuple[str, str]]:
        """(provider, key name) of every request, in order."""
        names = {value: name for name, value in KEYS.items()}
        return [(s.provider, names.get(s.key, s.key)) for s in self.outbound.sent]

    async def complete(self, principal: Principal | None = None, **params: Any) -> Any:
        call = {"tool": "chat", "prompt": "hi", **params}
        who = principal or USER
        if params.pop("stream", False):
            call.pop("stream")

            async def emit(piece: Any) -> None:
                self.chunks.append(piece)

            return await self.router.complete(call, who, emit)
        return await self.router.complete(call, who)


USER = Principal(name="alice", role=RoleConfig(name="user"), kind="user", user_id="u-alice")


def world(
    replies: dict[str, list[Reply]], *, retry_count: int = 0, rpm: int | None = None
) -> World:
    config = parse(config_text(retry_count, rpm), "matrix.pyfun")
    secrets = Secrets({name: Secret(value, "ENVIRONMENT") for name, value in KEYS.items()})
    live = SimpleNamespace(
        snapshot=Snapshot.build(config, secrets), redactor=Redactor(list(KEYS.values()))
    )
    store = _Store()
    ledger = UsageLedger(store)  # type: ignore[arg-type]
    limits = Limits(store)  # type: ignore[arg-type]
    outbound = MemoryOutbound(replies)
    router = Router(live, outbound, ledger, limits, KeyRotation())  # type: ignore[arg-type]
    return World(router, outbound, ledger, store)


BOUND = input_token_bound({"messages": [{"role": "user", "content": "hi"}], "system": ""})


@dataclass(frozen=True)
class Row:
    """One line of the matrix."""

    replies: dict[str, list[Reply]]
    sent: list[tuple[str, str]]  # (provider, key name) of each request, in order
    answered_by: str = ""  # the provider that answered, or "" when the call fails
    error: type[RPCError] | None = None
    outcome: str = "ok"  # the ledger row's
    path: list[str] = field(default_factory=list)  # providers on the fallback path
    retry_count: int = 0
    billed: tuple[int, int] | None = None  # (input, output) tokens of the row, if checked
    params: dict[str, Any] = field(default_factory=dict)  # of the call, besides tool and prompt


MATRIX = {
    "straight through": Row({"p0": [ok()]}, [("p0", "P0_KEY")], "p0", billed=(5, 3)),
    "a 5xx falls back": Row(
        {"p0": [status(500)], "p1": [ok()]},
        [("p0", "P0_KEY"), ("p1", "P1_KEY")],
        "p1",
        path=["p0"],
        billed=(5, 3),
    ),
    "a 429 on the only key of a provider falls back": Row(
        {"p1": [status(429)], "p2": [ok()]},
        [("p1", "P1_KEY"), ("p2", "P2_KEY")],
        "p2",
        path=["p1"],
        params={"provider": "p1"},
    ),
    "a refused request (400) stops the chain": Row(
        {"p0": [status(400)]},
        [("p0", "P0_KEY")],
        error=ProviderError,
        outcome="provider_error",
        path=["p0"],
        billed=(0, 0),
    ),
    "a refused key (401) tries the provider's next key first": Row(
        {"p0": [status(401), ok()]},
        [("p0", "P0_KEY"), ("p0", "P0_KEY_2")],
        "p0",
    ),
    "every key refused (403) falls back": Row(
        {"p0": [status(403), status(403)], "p1": [ok()]},
        [("p0", "P0_KEY"), ("p0", "P0_KEY_2"), ("p1", "P1_KEY")],
        "p1",
        path=["p0"],
    ),
    "a timeout falls back and its maximum is carried into the bill": Row(
        {"p0": [TIMEOUT], "p1": [ok()]},
        [("p0", "P0_KEY"), ("p1", "P1_KEY")],
        "p1",
        path=["p0"],
        billed=(BOUND + 5, 100 + 3),  # p0's bound and its model's max_output_tokens
    ),
    "a connection error falls back, nothing billed for it": Row(
        {"p0": [CONNECTION], "p1": [ok()]},
        [("p0", "P0_KEY"), ("p1", "P1_KEY")],
        "p1",
        path=["p0"],
        billed=(5, 3),
    ),
    "every provider timing out is a timeout": Row(
        {"p0": [TIMEOUT], "p1": [TIMEOUT], "p2": [TIMEOUT]},
        [("p0", "P0_KEY"), ("p1", "P1_KEY"), ("p2", "P2_KEY")],
        error=Timeout,
        outcome="timeout",
        path=["p0", "p1", "p2"],
    ),
    "every provider failing is a provider error": Row(
        {"p0": [status(502)], "p1": [CONNECTION], "p2": [status(500)]},
        [("p0", "P0_KEY"), ("p1", "P1_KEY"), ("p2", "P2_KEY")],
        error=ProviderError,
        outcome="provider_error",
        path=["p0", "p1", "p2"],
    ),
    "a retry asks the same provider again": Row(
        {"p0": [status(503), ok()]},
        [("p0", "P0_KEY"), ("p0", "P0_KEY_2")],  # the ring turns for the new try
        "p0",
        retry_count=1,
    ),
    "a refused request is never retried": Row(
        {"p0": [status(422)]},
        [("p0", "P0_KEY")],
        error=ProviderError,
        outcome="provider_error",
        path=["p0"],
        retry_count=3,
    ),
    "retries run out, then the chain moves on": Row(
        {"p0": [status(500), status(500)], "p1": [ok()]},
        [("p0", "P0_KEY"), ("p0", "P0_KEY_2"), ("p1", "P1_KEY")],
        "p1",
        path=["p0"],
        retry_count=1,
    ),
    "missing usage is counted by SealGate": Row(
        {"p0": [ok("four", usage=None)]}, [("p0", "P0_KEY")], "p0", billed=(BOUND, 4)
    ),
    "usage above the request's bounds is clamped": Row(
        {"p0": [ok(usage=(10**9, 10**9))]}, [("p0", "P0_KEY")], "p0", billed=(BOUND, 100)
    ),
}


@pytest.mark.parametrize("name", list(MATRIX))
async def test_the_call_matrix(name: str) -> None:
    row = MATRIX[name]
    w = world(row.replies, retry_count=row.retry_count)
    if row.error is None:
        answer = await w.complete(**row.params)
        assert answer["provider"] == row.answered_by
        assert answer["text"] == ("four" if "missing" in name else "hello")
        assert [step["provider"] for step in answer["fallback_path"]] == row.path
    else:
        with pytest.raises(row.error) as raised:
            await w.complete(**row.params)
        path = raised.value.data["fallback_path"]
        assert [step["provider"] for step in path] == row.path
    assert w.sent() == row.sent
    (usage,) = w.rows
    assert usage.outcome == row.outcome
    if row.billed is not None:
        assert (usage.input_tokens, usage.output_tokens) == row.billed
    if row.error is None:
        assert usage.provider == row.answered_by
    assert len(w.store.reserved) == 1  # the start is recorded once, before anything left


async def test_a_refused_key_is_set_aside_for_the_next_call() -> None:
    w = world({"p0": [status(401), ok(), ok()]})
    await w.complete()
    await w.complete()
    # the second call starts at the healthy key although the ring turned
    assert w.sent() == [("p0", "P0_KEY"), ("p0", "P0_KEY_2"), ("p0", "P0_KEY_2")]
    assert w.router.key_status()["p0"]["P0_KEY"].startswith("failing")


async def test_every_try_of_an_attempt_sends_the_same_encoded_body() -> None:
    w = world({"p0": [status(503), status(401), ok()]}, retry_count=1)
    await w.complete()
    bodies = [s.call.body for s in w.outbound.sent]
    assert len(bodies) == 3 and bodies[0] is bodies[1] is bodies[2]
    assert all(s.call.json is None for s in w.outbound.sent)
    assert json.loads(bodies[0] or b"")["messages"] == [{"role": "user", "content": "hi"}]


async def test_a_budget_too_small_for_the_worst_case_sends_nothing() -> None:
    w = world({"p0": [ok()]})
    capped = Principal(
        name="bob",
        role=RoleConfig(name="capped", monthly_budget_usd=0.000001),
        kind="user",
        user_id="u-bob",
    )
    with pytest.raises(BudgetExceeded):
        await w.complete(capped)
    assert w.outbound.sent == [] and w.rows == [] and w.store.reserved == []


async def test_a_budget_holds_the_worst_case_and_settles_to_the_cost() -> None:
    w = world({"p0": [ok()]})
    capped = Principal(
        name="bob",
        role=RoleConfig(name="capped", monthly_budget_usd=1.0),
        kind="user",
        user_id="u-bob",
    )
    answer = await w.complete(capped)
    (held,) = w.store.reserved
    # m0 is the only priced attempt: its bound input and max_output_tokens
    assert held.amount == pytest.approx((BOUND * 1.0 + 100 * 2.0) / 1e6)
    assert (held.provider, held.model, held.output_tokens) == ("p0", "m0", 100)
    assert answer["cost_usd"] == pytest.approx((5 * 1.0 + 3 * 2.0) / 1e6)
    limits = w.router.limits
    assert limits.memory is not None
    spent = limits.memory.peek("spend:u-bob", held.window_start)
    assert spent == pytest.approx(answer["cost_usd"])


async def test_a_rationed_model_is_skipped_for_the_next_provider() -> None:
    w = world({"p0": [ok()], "p1": [ok()]}, rpm=1)
    first = await w.complete()
    second = await w.complete()
    assert (first["provider"], second["provider"]) == ("p0", "p1")
    assert "requests per minute" in second["fallback_path"][0]["error"]


async def test_a_model_rationed_everywhere_is_rate_limited_and_nothing_sent() -> None:
    w = world({"p0": [ok()]}, rpm=1)
    only_p0 = Principal(
        name="carol", role=RoleConfig(name="p0-only", providers=("p0",)), kind="user"
    )
    await w.complete(only_p0)
    with pytest.raises(RateLimited):
        await w.complete(only_p0)
    assert len(w.outbound.sent) == 1
    assert [row.outcome for row in w.rows] == ["ok", "rate_limited"]


async def test_a_stream_passes_chunks_on_and_is_billed_its_reported_usage() -> None:
    w = world({"p0": [streamed(chunk("hel"), chunk("lo"), USAGE_EVENT, "[DONE]")]})
    answer = await w.complete(stream=True)
    assert [c["text"] for c in w.chunks] == ["hel", "lo"]
    assert answer["text"] == "" and answer["usage"]["output_tokens"] == 2
    assert w.outbound.sent[0].json["stream"] is True


async def test_a_stream_refused_before_its_first_chunk_falls_back() -> None:
    w = world({"p0": [status(500)], "p1": [streamed(chunk("hi"), USAGE_EVENT, "[DONE]")]})
    answer = await w.complete(stream=True)
    assert answer["provider"] == "p1" and [c["text"] for c in w.chunks] == ["hi"]


async def test_a_stream_broken_after_a_chunk_neither_falls_back_nor_retries() -> None:
    w = world({"p0": [streamed(chunk("hel"), "!connection")], "p1": [ok()]}, retry_count=2)
    with pytest.raises(ProviderError, match="broke after 1 chunks"):
        await w.complete(stream=True)
    assert w.sent() == [("p0", "P0_KEY")]
    (usage,) = w.rows
    # cut short: the bound input and at least the text that arrived, estimated
    assert (usage.outcome, usage.estimated) == ("provider_error", True)
    assert (usage.input_tokens, usage.output_tokens) == (BOUND, 3)


async def test_a_cancelled_call_writes_its_one_row_at_the_maximum() -> None:
    w = world({"p0": [Reply(body=ok().body, delay_s=3.0)]})
    task = asyncio.create_task(w.complete())
    while not w.outbound.sent:
        await asyncio.sleep(0)
    task.cancel("shutdown")
    with pytest.raises(asyncio.CancelledError):
        await task
    (usage,) = w.rows
    assert (usage.outcome, usage.estimated) == ("shutdown", True)
    assert (usage.input_tokens, usage.output_tokens) == (BOUND, 100)
