"""A compromised sandbox names the tool a sealed call is for. The guardian must check what
that tool may do: a completion labelled `get_model_info` (or any tool that makes no LLM
call) is refused for a role allowed only that tool, and so is a search labelled as one."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from protocol.errors import Forbidden
from tests.fakes.providers import FakeBrave, FakeOpenAI
from tests.helpers import Stack
from tests.security.common import caller, issue_token, provider_block, sandbox_client

ROLES = """
[ROLE.info_only]
tools = "get_model_info, list_active_tools, health_check"
[ROLE.info_only_END]
[ROLE.writer]
tools = "llm_complete"
[ROLE.writer_END]
"""


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeBrave]]:
    llm, search = FakeOpenAI(name="fake").start(), FakeBrave(name="brave").start()
    yield llm, search
    llm.stop()
    search.stop()


async def test_a_relabelled_call_is_refused(
    stack_factory: Callable[..., Stack], fakes: tuple[FakeOpenAI, FakeBrave]
) -> None:
    llm, search = fakes
    brave = f"""
[SEARCH_PROVIDER.brave]
api = "brave"
base_url = "{search.base}/res/v1/web/search"
allow_insecure = "true"
requires_key = "false"
[SEARCH_PROVIDER.brave_END]
"""
    stack = stack_factory(
        single_uid=True, config_text=provider_block(llm, keyed=False) + brave + ROLES
    )
    info_only = issue_token(stack, "mallory", "info_only")
    writer = issue_token(stack, "wendy", "writer")
    rpc = await sandbox_client(stack)
    try:
        for tool in ("get_model_info", "list_active_tools", "health_check", "web_search"):
            for method in ("llm.complete", "llm.stream"):
                params = {"caller": caller(info_only), "tool": tool, "prompt": "hi"}
                with pytest.raises(Forbidden):
                    if method == "llm.complete":
                        await rpc.call(method, params)
                    else:
                        async with rpc.stream(method, params) as stream:
                            async for _ in stream:
                                pass
        # A writer may not search by calling its search a completion tool either.
        with pytest.raises(Forbidden):
            await rpc.call(
                "search.web", {"caller": caller(writer), "tool": "llm_complete", "query": "q"}
            )
        with pytest.raises(Forbidden):
            await rpc.call(
                "search.web", {"caller": caller(info_only), "tool": "get_model_info", "query": "q"}
            )
        # What the roles do allow still works.
        done = await rpc.call(
            "llm.complete", {"caller": caller(writer), "tool": "llm_complete", "prompt": "hi"}
        )
        assert done["text"] == llm.reply_text
        assert await rpc.call("models.info", {"caller": caller(info_only)})
    finally:
        await rpc.close()
    assert len(llm.requests) == 1  # the writer's completion, nothing else reached a provider
    assert not search.requests
