"""Planning, fallback rules and key rotation, in-process: hundreds of cases in well under a
second. The end-to-end tests (tests/e2e, tests/security) prove the same rules through the
real processes; these pin every combination down."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from guardian.calls import planning
from guardian.calls.keys import FAILING_FOR_S, KeyRing, KeyRotation
from guardian.calls.planning import Attempt, Step
from guardian.providers.types import ProviderFailure
from guardian.secrets import Secret, Secrets
from guardian.snapshot import Snapshot
from protocol.errors import Forbidden, InvalidParams, NotFound, ProviderError, Timeout, Unavailable
from protocol.pyfun import PyfunConfig, RoleConfig, parse

NAMES = ("p0", "p1", "p2", "p3")


def provider_block(index: int, name: str) -> str:
    following = f'fallback_to   = "{NAMES[index + 1]}"\n' if index + 1 < len(NAMES) else ""
    return (
        f"[LLM_PROVIDER.{name}]\n"
        'api            = "openai"\n'
        f'base_url       = "http://127.0.0.1:9/{name}"\n'
        'allow_insecure = "true"\n'
        f'env_key        = "{name.upper()}_KEY"\n'
        f'default_model  = "{name}-default"\n'
        f'models         = "{name}-extra"\n'
        f'timeout_sec    = "{10 + index}"\n'
        f"{following}"
        f"[LLM_PROVIDER.{name}_END]\n"
    )


CONFIG_TEXT = (
    "".join(provider_block(i, n) for i, n in enumerate(NAMES))
    + """
[MODEL.priced]
provider           = "p1"
cost_input_per_1m  = "1.00"
cost_output_per_1m = "2.00"
[MODEL.priced_END]

[TOOL.chained]
provider_type    = "llm"
default_provider = "p2"
timeout_sec      = "42"
max_tokens       = "300"
system_prompt    = "be brief"
[TOOL.chained_END]
"""
)
CONFIG: PyfunConfig = parse(CONFIG_TEXT, "planning.pyfun")


def snapshot(active: tuple[str, ...] = NAMES) -> Snapshot:
    secrets = {f"{n.upper()}_KEY": Secret(f"key-of-{n}-0123456789", "ENVIRONMENT") for n in active}
    return Snapshot.build(CONFIG, Secrets(secrets))


def subsets() -> Iterator[tuple[str, ...]]:
    for size in range(len(NAMES) + 1):
        yield from itertools.combinations(NAMES, size)


# the chain ---------------------------------------------------------------------------------
@pytest.mark.parametrize("start", NAMES)
def test_a_chain_is_the_active_providers_from_its_start_along_fallback_to(start: str) -> None:
    for active in subsets():  # 16 key sets x 4 starts
        path: list[Step] = []
        along = NAMES[NAMES.index(start) :]
        expected = [n for n in along if n in active]
        if not expected:
            with pytest.raises(Unavailable):
                planning.provider_chain(CONFIG.llm_providers, active, start, path)
            continue
        chain = planning.provider_chain(CONFIG.llm_providers, active, start, path)
        assert [p.name for p in chain] == expected
        assert [step["provider"] for step in path] == [n for n in along if n not in active]
        assert all(step["error"].startswith("skipped") for step in path)


def test_an_unknown_start_is_not_found() -> None:
    with pytest.raises(NotFound):
        planning.provider_chain(CONFIG.llm_providers, NAMES, "nope", [])


# where a completion starts -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("", "", ("p0", "p0-default")),  # the first active provider, its default model
        ("p2", "", ("p2", "p2-default")),
        ("", "p3-default", ("p3", "p3-default")),  # a provider's default model
        ("", "p1-extra", ("p1", "p1-extra")),  # a provider's listed model
        ("", "priced", ("p1", "priced")),  # a [MODEL] block names its provider
        ("", "p2/anything-new", ("p2", "anything-new")),  # provider/model passes any id
        ("p2", "p2/anything-new", ("p2", "anything-new")),
        ("p3", "priced", ("p3", "priced")),  # a named provider wins over the model's owner
    ],
)
def test_the_first_attempt_follows_what_the_caller_named(
    provider: str, model: str, expected: tuple[str, str]
) -> None:
    attempts = planning.plan_llm(snapshot(), None, {"provider": provider, "model": model}, [])
    assert (attempts[0].provider.name, attempts[0].model) == expected


def test_a_pinned_model_goes_only_to_the_first_provider() -> None:
    attempts = planning.plan_llm(snapshot(), None, {"model": "p1-extra"}, [])
    assert [(a.provider.name, a.model) for a in attempts] == [
        ("p1", "p1-extra"),
        ("p2", "p2-default"),
        ("p3", "p3-default"),
    ]


def test_a_tool_starts_at_its_default_provider() -> None:
    tool = CONFIG.tools["chained"]
    attempts = planning.plan_llm(snapshot(), tool, {}, [])
    assert [a.provider.name for a in attempts] == ["p2", "p3"]
    assert planning.system_prompt(tool, {"system": "caller's"}) == "be brief"
    assert planning.max_tokens_for({}, tool, None) == 300


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"model": "unknown-model"}, NotFound),
        ({"model": "p1/x", "provider": "p2"}, InvalidParams),
        ({"provider": "ghost"}, NotFound),
    ],
)
def test_what_cannot_be_planned_is_refused(params: dict[str, str], error: type) -> None:
    with pytest.raises(error):
        planning.plan_llm(snapshot(), None, params, [])


def test_a_model_nobody_can_serve_now_is_not_found_not_unavailable() -> None:
    with pytest.raises(NotFound, match="not available"):
        planning.plan_llm(snapshot(active=("p0",)), None, {"model": "p3-default"}, [])
    with pytest.raises(Unavailable):
        planning.plan_llm(snapshot(active=()), None, {}, [])


# roles -------------------------------------------------------------------------------------
@pytest.mark.parametrize("allowed", list(subsets())[1:])
@pytest.mark.parametrize("pinned", [False, True])
def test_a_role_keeps_only_its_providers(allowed: tuple[str, ...], pinned: bool) -> None:
    role = RoleConfig(name="r", providers=allowed)
    attempts = planning.plan_llm(snapshot(), None, {}, [])
    path: list[Step] = []
    if pinned and "p0" not in allowed:
        with pytest.raises(Forbidden):
            planning.allowed_attempts(role, attempts, True, snapshot(), path)
        return
    kept = planning.allowed_attempts(role, attempts, pinned, snapshot(), path)
    assert [a.provider.name for a in kept] == [n for n in NAMES if n in allowed]
    assert len(path) == len(NAMES) - len(allowed)


def test_a_role_allowed_nothing_here_is_forbidden() -> None:
    role = RoleConfig(name="r", providers=("elsewhere",))
    with pytest.raises(Forbidden, match="none of the providers"):
        planning.allowed_attempts(
            role, planning.plan_llm(snapshot(), None, {}, []), False, snapshot(), []
        )


def test_a_budgeted_role_may_use_only_priced_models() -> None:
    role = RoleConfig(name="r", monthly_budget_usd=5.0)
    attempts = planning.plan_llm(snapshot(), None, {"model": "priced"}, [])
    path: list[Step] = []
    kept = planning.allowed_attempts(role, attempts, False, snapshot(), path)
    assert [a.model for a in kept] == ["priced"]
    with pytest.raises(Forbidden, match="no cost entry"):
        planning.allowed_attempts(
            role, planning.plan_llm(snapshot(), None, {}, []), True, snapshot(), []
        )


@pytest.mark.parametrize("tool", ["llm_complete", "web_search", "get_model_info", "chained"])
@pytest.mark.parametrize("kind", ["llm", "search"])
def test_a_tool_makes_only_its_own_kind_of_call(tool: str, kind: str) -> None:
    own = {"llm_complete": "llm", "web_search": "search", "get_model_info": "", "chained": "llm"}
    snap = snapshot()
    if tool not in snap.tools:
        with pytest.raises(NotFound):
            planning.tool_for(snap, tool, kind)
    elif own[tool] != kind:
        with pytest.raises(Forbidden):
            planning.tool_for(snap, tool, kind)
    else:
        planning.tool_for(snap, tool, kind)


def test_search_planning_honours_the_role() -> None:
    role = RoleConfig(name="r", providers=("p1",))
    with pytest.raises(Unavailable):  # no search provider in this configuration
        planning.plan_search(snapshot(), None, "", role, [])


# fallback and retry rules ------------------------------------------------------------------
STATUSES = [None, 400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529]
KINDS = ["status", "timeout", "connection", "malformed"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("sent", [0, 1, 7])
def test_a_call_moves_on_only_after_a_retryable_failure_and_before_any_text(
    kind: str, status: int | None, sent: int
) -> None:
    failure = ProviderFailure(kind, "x", status=status if kind == "status" else None)
    refused = kind == "status" and status is not None and 400 <= status < 500
    refused = refused and status not in (401, 403, 408, 429)
    assert planning.may_move_on(failure, sent) is (not refused and sent == 0)


def test_the_final_error_says_what_happened() -> None:
    p = CONFIG.llm_providers["p0"]
    timeout = ProviderFailure("timeout", "timed out after 10 s")
    assert isinstance(planning.final_error([], None, 0, ""), Unavailable)
    timed_out = [{"provider": "p0", "error": "timed out after 10 s"}]
    assert isinstance(planning.final_error(timed_out, (Attempt(p, "m"), timeout), 0, "t"), Timeout)
    refused = ProviderFailure("status", "bad request", status=400)
    error = planning.final_error([], (Attempt(p, "m"), refused), 0, "bad request")
    assert isinstance(error, ProviderError) and "not retried elsewhere" in error.message
    broke = planning.final_error([], (Attempt(p, "m"), timeout), 3, "t")
    assert "broke after 3 chunks" in broke.message


def test_the_worst_case_is_what_a_budget_holds() -> None:
    a, b = (Attempt(CONFIG.llm_providers[n], "m") for n in ("p0", "p1"))
    assert planning.worst_case([(0.5, a), (None, b)]) == (0.5, a)
    assert planning.worst_case([(0.5, a), (0.5, b)]) == (0.5, b)
    assert planning.worst_case([(None, a)]) == (0.0, a)


@pytest.mark.parametrize(
    "params",
    [{}, {"prompt": "x", "messages": []}, {"messages": []}, {"messages": [{"role": "robot"}]}],
)
def test_a_conversation_is_a_prompt_or_messages(params: dict[str, object]) -> None:
    with pytest.raises(InvalidParams):
        planning.messages_of(params)


def test_developer_messages_become_system_messages() -> None:
    messages = planning.messages_of({"messages": [{"role": "developer", "content": "hi"}]})
    assert messages == [{"role": "system", "content": "hi"}]


# key rotation ------------------------------------------------------------------------------
def secrets_of(*names: str) -> Secrets:
    return Secrets({n: Secret(f"value-of-{n}-0123456789", "ENVIRONMENT") for n in names})


def test_keys_rotate_over_calls_and_a_failing_key_goes_last_until_it_recovers() -> None:
    ring = KeyRing(("A", "B", "C"))
    secrets = secrets_of("A", "B", "C")
    firsts = [ring.order(secrets, now=0)[0][0] for _ in range(6)]
    assert firsts == ["A", "B", "C", "A", "B", "C"]
    ring.mark_failing("A", "HTTP 401", now=100)
    for now in (100, 100 + FAILING_FOR_S - 1):
        for _ in range(3):
            assert [name for name, _ in ring.order(secrets, now=now)][-1] == "A"
    assert ring.status(now=100)["A"] == "failing (HTTP 401)"
    assert ring.status(now=100 + FAILING_FOR_S + 1)["A"] == "ok"
    ring.mark_ok("A")
    assert ring.status(now=100)["A"] == "ok"


def test_absent_keys_are_never_offered() -> None:
    ring = KeyRing(("A", "B", "C"))
    assert [n for n, _ in ring.order(secrets_of("B"), now=0)] == ["B"]
    assert ring.order(secrets_of(), now=0) == []


@pytest.mark.parametrize("refusals", range(4))
@pytest.mark.parametrize("status", [401, 403, 429, 500, 400])
def test_a_refused_key_is_set_aside_and_the_next_one_tried(refusals: int, status: int) -> None:
    provider = CONFIG.llm_providers["p0"]
    provider = type(provider)(**{**_fields(provider), "env_keys": ("K1", "K2", "K3")})
    used: list[str] = []
    tried: list[str | None] = []

    async def send(key: str | None, timeout: float) -> str:
        tried.append(key)
        if len(tried) <= refusals:
            raise ProviderFailure("status", "no", status=status)
        return "answer"

    rotation = KeyRotation(key_used=used.append)
    secrets = secrets_of("K1", "K2", "K3")
    blames_key = status in (401, 403, 429)

    async def run() -> str:
        return await rotation.call(secrets, provider, deadline=float("inf"), send=send)

    if refusals == 0:
        assert asyncio.run(run()) == "answer" and len(used) == 1
    elif not blames_key or refusals >= 3:
        with pytest.raises(ProviderFailure):
            asyncio.run(run())
        assert len(tried) == (min(refusals, 3) if blames_key else 1)
    else:
        assert asyncio.run(run()) == "answer"
        assert len(tried) == refusals + 1 and len(set(tried)) == len(tried)
        assert sum(s.startswith("failing") for s in rotation.status()["p0"].values()) == refusals


def test_a_provider_without_keys_present_fails_as_configuration() -> None:
    async def send(key: str | None, timeout: float) -> str:
        raise AssertionError("nothing may be sent without a key")

    provider = CONFIG.llm_providers["p0"]
    with pytest.raises(ProviderFailure, match="no key"):
        asyncio.run(KeyRotation().call(secrets_of(), provider, float("inf"), send))


def _fields(provider: object) -> dict[str, object]:
    return {name: getattr(provider, name) for name in provider.__dataclass_fields__}  # type: ignore[attr-defined]
