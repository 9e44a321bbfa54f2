"""`llm.count_tokens` (issue 27, `/v1/messages/count_tokens`) is a sealed call like any other:
a compromised sandbox holding guardian.sock cannot use it to reach a provider its caller's role
may not use, by naming the provider, by naming one of its models, or by leaving the choice to
the guardian. Nothing reaches that provider, the refusal is the caller's `forbidden`, and every
count is admitted (and rate-limited) like a call. A provider the role may use gets asked only if
it speaks Anthropic's wire format; for another, the guardian answers its estimate, marked."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from protocol.errors import Forbidden, RateLimited, Unauthenticated
from tests.fakes.providers import FakeAnthropic, FakeOpenAI
from tests.helpers import Stack
from tests.security.common import caller, issue_token, provider_block, sandbox_client


def config(anthropic: FakeAnthropic, openai: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.claude]
api = "anthropic"
base_url = "{anthropic.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "claude-x"
[LLM_PROVIDER.claude_END]
{provider_block(openai, keyed=False)}
[ROLE.narrow]
providers = "fake"
requests_per_min = "5"
[ROLE.narrow_END]
"""


async def test_a_sandbox_cannot_count_tokens_at_a_provider_the_role_may_not_use(
    stack_factory: Callable[..., Stack],
) -> None:
    anthropic, openai = FakeAnthropic(name="claude").start(), FakeOpenAI(name="fake").start()
    try:
        stack = stack_factory(single_uid=True, config_text=config(anthropic, openai))
        narrow = issue_token(stack, "mallory", "narrow")
        admin = issue_token(stack, "alice", "admin")
        rpc = await sandbox_client(stack)
        try:
            hello = [{"role": "user", "content": "Hello there"}]
            base = {"caller": caller(narrow), "tool": "llm_complete", "messages": hello}
            for steer in ({"provider": "claude"}, {"model": "claude-x"}, {"model": "claude/x"}):
                with pytest.raises(Forbidden):
                    await rpc.call("llm.count_tokens", {**base, **steer})
            with pytest.raises(Forbidden):  # left to the guardian, which would pick claude
                await rpc.call("llm.count_tokens", base)
            assert anthropic.requests == []
            # the provider it may use: no count_tokens endpoint, so the estimate, marked
            counted = await rpc.call("llm.count_tokens", {**base, "provider": "fake"})
            assert counted["estimated"] is True and counted["provider"] == "fake"
            assert counted["input_tokens"] > 0 and openai.requests == []
            # five counts a minute, refused ones included: the sixth is rate-limited
            with pytest.raises(RateLimited):
                await rpc.call("llm.count_tokens", {**base, "provider": "fake"})
            with pytest.raises(Unauthenticated):
                await rpc.call("llm.count_tokens", {**base, "caller": caller("sg_forged")})
            # a role that may use claude gets Anthropic's own count, asked with no max_tokens
            counted = await rpc.call(
                "llm.count_tokens", {**base, "caller": caller(admin), "provider": "claude"}
            )
            assert counted["estimated"] is False and counted["provider"] == "claude"
            (asked,) = anthropic.requests
            assert asked.path == "/v1/messages/count_tokens" and "max_tokens" not in asked.body
        finally:
            await rpc.close()
    finally:
        anthropic.stop()
        openai.stop()
