"""The sandbox's temperature-0 tool cache serves an answer only to a credential the guardian
allowed that tool, and only under the same grant: an `mcp`-only token of the same user, or a
new user of a deleted user's name, never gets an answer cached for another credential."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.mcp_client import mcp_session
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.security.stackdb import ctl
from tests.security.test_oauth import PASSWORD
from tests.security.test_reused_user_name import add_user, oauth_tokens, register

ASK = {"prompt": "the same question", "temperature": 0}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


def config(fake: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
[LLM_PROVIDER.fake_END]
"""


async def ask(stack: Stack, token: str) -> tuple[bool, str, bool]:
    """(refused, text, cached) of one temperature-0 llm_complete over MCP."""
    async with mcp_session(stack.url, headers={"Authorization": f"Bearer {token}"}) as client:
        answer = await client.call_tool("llm_complete", ASK)
    if answer.is_error:
        return True, answer.content[0].text, False
    content = answer.structured_content or {}
    return False, str(content.get("text")), bool(content.get("cached"))


@pytest.fixture
def stack(stack_factory: Callable[..., Stack], fake: FakeOpenAI) -> Stack:
    started = stack_factory(config_text=config(fake))
    add_user(started, "keeper", "admin")
    add_user(started, "demo")
    return started


async def test_an_mcp_only_token_gets_no_cached_llm_answer(stack: Stack, fake: FakeOpenAI) -> None:
    full = ctl(stack, "tokens", "issue", "--user", "demo")
    assert (await ask(stack, full))[0] is False
    assert (await ask(stack, full))[2] is True  # cached for this credential
    # the attack of the issue: an `mcp`-only token of the same user got the cached answer
    refused, text, _ = await ask(stack, _mcp_only(stack))
    assert refused and "forbidden" in text, text
    # a token of the same user that may call the tool, but another credential: asked again
    narrow = oauth_tokens(stack, register(stack), "demo")  # scope "mcp llm"
    calls = len(fake.requests)
    refused, _, cached = await ask(stack, narrow["access_token"])
    assert not refused and not cached
    assert len(fake.requests) == calls + 1


def _mcp_only(stack: Stack) -> str:
    from tests.security.test_oauth import exchange, pkce, redirect_query, request_params, sign_in

    client_id = register(stack)
    verifier, challenge = pkce()
    params = request_params(client_id, challenge, scope="mcp")
    query = redirect_query(sign_in(stack, params, user="demo"))
    answer = exchange(stack, client_id, query["code"], verifier)
    assert answer.status_code == 200 and answer.json()["scope"] == "mcp", answer.text
    return str(answer.json()["access_token"])


async def test_a_new_user_of_an_old_name_gets_no_cached_answer(
    stack: Stack, fake: FakeOpenAI
) -> None:
    first = ctl(stack, "tokens", "issue", "--user", "demo")
    assert (await ask(stack, first))[0] is False
    ctl(stack, "users", "delete", "demo")
    ctl(stack, "users", "add", "demo", stdin=f"{PASSWORD}\n")
    second = ctl(stack, "tokens", "issue", "--user", "demo")
    calls = len(fake.requests)
    refused, _, cached = await ask(stack, second)
    assert not refused and not cached
    assert len(fake.requests) == calls + 1
