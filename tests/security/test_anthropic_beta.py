"""`anthropic-beta` and thinking never go out on the sandbox's word (issue 27, invariant 3):
headers come from guardian configuration only. A compromised sandbox that puts any values
in `betas` gets only those on the provider's `anthropic_beta` allowlist sent; a value meant
to split the header (CR/LF) never reaches the wire; an OpenAI-format provider gets neither
betas nor thinking. What was not sent is reported back as dropped, and only the
Anthropic-only fields the contract names cross as data."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from protocol.errors import InvalidParams
from tests.fakes.providers import FakeAnthropic, FakeOpenAI
from tests.helpers import Stack
from tests.security.common import caller, issue_token, provider_block, sandbox_client

ALLOWED = "allowed-beta-2025-01-01"


def config(anthropic: FakeAnthropic, openai: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.claude]
api = "anthropic"
base_url = "{anthropic.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "claude-x"
anthropic_beta = "{ALLOWED}"
[LLM_PROVIDER.claude_END]
""" + provider_block(openai, keyed=False)


async def test_a_sandbox_cannot_choose_the_anthropic_beta_header(
    stack_factory: Callable[..., Stack],
) -> None:
    anthropic, openai = FakeAnthropic(name="claude").start(), FakeOpenAI(name="fake").start()
    try:
        stack = stack_factory(single_uid=True, config_text=config(anthropic, openai))
        token = issue_token(stack, "mallory", "admin")
        rpc = await sandbox_client(stack)
        try:
            wanted = ["made-up-2025", ALLOWED, "x\r\nx-injected: 1", ALLOWED + ",other"]
            base = {"caller": caller(token), "tool": "llm_complete", "prompt": "hi"}
            done = await rpc.call("llm.complete", {**base, "provider": "claude", "betas": wanted})
            sent = anthropic.requests[-1].headers
            assert sent["anthropic-beta"] == ALLOWED
            assert "x-injected" not in sent
            assert done["dropped"] == {"anthropic-beta": [b for b in wanted if b != ALLOWED]}
            thinking = {"type": "enabled", "budget_tokens": 1024}
            done = await rpc.call(
                "llm.complete",
                {**base, "provider": "fake", "betas": wanted, "anthropic": {"thinking": thinking}},
            )
            assert "anthropic-beta" not in openai.requests[-1].headers
            assert "thinking" not in json.dumps(openai.requests[-1].body)
            assert done["dropped"]["anthropic"] == ["thinking"]
            assert done["dropped"]["anthropic-beta"] == wanted
            # only the three Anthropic-only fields cross: nothing that would overwrite the
            # body the guardian builds (model, max_tokens, ...)
            for smuggled in ({"model": "x"}, {"max_tokens": 10**6}, {"stream": True}):
                with pytest.raises(InvalidParams, match="unknown parameter"):
                    await rpc.call(
                        "llm.complete", {**base, "provider": "claude", "anthropic": smuggled}
                    )
        finally:
            await rpc.close()
    finally:
        anthropic.stop()
        openai.stop()
