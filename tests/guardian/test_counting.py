"""`llm.count_tokens` planning and its Anthropic call, in-process (issue 27): a count goes
where the completion's first attempt would, refused where the role may not go; only an
Anthropic provider is asked, with the Messages request minus what only shapes an answer; any
other gets SealGate's estimate, the guardian's budget bound."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import MessageCountTokensParams

from guardian.calls import counting
from guardian.calls.costs import FRAMING_TOKENS
from guardian.providers.types import ProviderFailure
from guardian.secrets import Secret, Secrets
from guardian.snapshot import Snapshot
from protocol.errors import Forbidden, NotFound
from protocol.pyfun import RoleConfig, parse

CONFIG = parse(
    """
[LLM_PROVIDER.claude]
api = "anthropic"
base_url = "https://claude.example/v1"
env_key = "CLAUDE_KEY"
default_model = "claude-x"
anthropic_beta = "ok-beta"
[LLM_PROVIDER.claude_END]
[LLM_PROVIDER.gem]
api = "gemini"
base_url = "https://gem.example/v1beta"
env_key = "GEM_KEY"
default_model = "gemini-x"
[LLM_PROVIDER.gem_END]
[MODEL.small]
provider = "gem"
context_window = "40"
[MODEL.small_END]
""",
    "counting.pyfun",
)
SNAPSHOT = Snapshot.build(
    CONFIG,
    Secrets(
        {
            "CLAUDE_KEY": Secret("key-of-claude-0123456789", "ENVIRONMENT"),
            "GEM_KEY": Secret("key-of-gem-0123456789", "ENVIRONMENT"),
        }
    ),
)
ANYONE = RoleConfig(name="anyone")
HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


def params(**extra: Any) -> dict[str, Any]:
    return {"tool": "llm_complete", "messages": HELLO, **extra}


def test_an_anthropic_model_is_counted_by_its_provider() -> None:
    plan = counting.plan_count(SNAPSHOT, ANYONE, params(model="claude-x"))
    assert plan.asks_provider and plan.provider.name == "claude" and plan.model == "claude-x"


@pytest.mark.parametrize("named", [{"model": "gemini-x"}, {"provider": "gem"}])
def test_another_wire_format_gets_the_estimate(named: dict[str, str]) -> None:
    plan = counting.plan_count(SNAPSHOT, ANYONE, params(system="S", **named))
    assert not plan.asks_provider and plan.provider.name == "gem"
    measured = json.dumps({"messages": HELLO, "system": "S"}, separators=(",", ":"))
    assert plan.estimate == len(measured) + FRAMING_TOKENS


def test_the_estimate_is_capped_by_the_models_context_window() -> None:
    assert counting.plan_count(SNAPSHOT, ANYONE, params(model="small")).estimate == 40


@pytest.mark.parametrize(
    "named", [{"model": "claude-x"}, {"provider": "claude"}, {"model": "claude/any"}, {}]
)
def test_a_provider_the_role_may_not_use_is_refused(named: dict[str, str]) -> None:
    role = RoleConfig(name="narrow", providers=("gem",))
    with pytest.raises(Forbidden):
        counting.plan_count(SNAPSHOT, role, params(**named))


def test_an_unknown_model_is_not_found() -> None:
    with pytest.raises(NotFound):
        counting.plan_count(SNAPSHOT, ANYONE, params(model="no-such-model"))


def test_the_count_call_is_anthropics_count_tokens_request() -> None:
    plan = counting.plan_count(
        SNAPSHOT,
        ANYONE,
        params(
            model="claude-x",
            system="Be brief.",
            tools=[WEATHER],
            tool_choice="required",
            stop=["END"],
            max_tokens=99,
            temperature=0.5,
            betas=["ok-beta", "other-beta"],
            anthropic={"thinking": {"type": "enabled", "budget_tokens": 1024}},
        ),
    )
    call = counting.count_call(plan.provider, "the-key", plan.request)
    assert call.method == "POST" and call.url == "https://claude.example/v1/messages/count_tokens"
    assert call.headers["x-api-key"] == "the-key" and call.headers["anthropic-beta"] == "ok-beta"
    body = call.json
    assert set(body) <= set(MessageCountTokensParams.__annotations__)
    assert body["model"] == "claude-x" and body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "any"}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("reply", [{}, {"input_tokens": "7"}, {"input_tokens": -1}, [], None])
def test_a_reply_without_a_count_is_malformed(reply: Any) -> None:
    with pytest.raises(ProviderFailure) as failed:
        counting.parse_count(reply)
    assert failed.value.kind == "malformed"


def test_a_count_is_read_as_anthropic_sends_it() -> None:
    assert counting.parse_count({"input_tokens": 2095}) == 2095
