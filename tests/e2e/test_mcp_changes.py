"""A reload that adds or removes tools and prompts reaches every MCP client within 2 s:
`notifications/{tools,prompts}/list_changed` on handshake (legacy) sessions, on /mcp and
/sse, and `subscriptions/listen` events for stateless (2026-07-28) clients; all read with
the official client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp import Client
from mcp.client.subscriptions import PromptsListChanged, ToolsListChanged

from tests.e2e.mcp_client import mcp_session
from tests.e2e.test_reload import ctl, write_env_file
from tests.helpers import Stack

WITHIN_S = 2.0
KEY = "ANTHROPIC_API_KEY=fake-ant-added-later-000000000\n"


class Heard:
    """The change kinds one client heard, with when."""

    def __init__(self) -> None:
        self.kinds: dict[str, float] = {}

    def note(self, kind: str) -> None:
        self.kinds.setdefault(kind, time.monotonic())

    async def legacy_message(self, message: Any) -> None:
        text = repr(message)
        for kind in ("tools", "prompts"):
            if f"{kind}/list_changed" in text or f"{kind.title()[:-1]}ListChanged" in text:
                self.note(kind)


@contextlib.asynccontextmanager
async def listening(client: Client, heard: Heard) -> AsyncIterator[None]:
    """Consume a `subscriptions/listen` stream in the background."""
    async with client.listen(tools_list_changed=True, prompts_list_changed=True) as sub:
        assert sub.honored.tools_list_changed and sub.honored.prompts_list_changed

        async def consume() -> None:
            async for event in sub:
                if isinstance(event, ToolsListChanged):
                    heard.note("tools")
                elif isinstance(event, PromptsListChanged):
                    heard.note("prompts")

        task = asyncio.create_task(consume())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def wait_for_all(clients: dict[str, Heard], since: float) -> None:
    deadline = since + WITHIN_S
    while any({"tools", "prompts"} - set(h.kinds) for h in clients.values()):
        assert time.monotonic() < deadline, {name: h.kinds for name, h in clients.items()}
        await asyncio.sleep(0.05)
    for name, heard in clients.items():
        for kind, when in heard.kinds.items():
            assert when - since <= WITHIN_S, (name, kind, when - since)


async def test_a_reload_reaches_legacy_sessions_and_listen_streams_within_two_seconds(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory()
    heard = {name: Heard() for name in ("http-legacy", "sse-legacy", "http-listen")}
    async with contextlib.AsyncExitStack() as sessions:
        http = await sessions.enter_async_context(
            mcp_session(
                stack.url, "http", "legacy", message_handler=heard["http-legacy"].legacy_message
            )
        )
        sse = await sessions.enter_async_context(
            mcp_session(
                stack.url, "sse", "legacy", message_handler=heard["sse-legacy"].legacy_message
            )
        )
        modern = await sessions.enter_async_context(mcp_session(stack.url, "http", "auto"))
        assert modern.session.discover_result is not None  # really the stateless revision
        assert modern.server_capabilities.tools and modern.server_capabilities.tools.list_changed
        await sessions.enter_async_context(listening(modern, heard["http-listen"]))
        for client in (http, sse, modern):
            assert "code_review" not in {t.name for t in (await client.list_tools()).tools}
            assert (await client.list_prompts()).prompts == []

        write_env_file(stack, KEY)
        started = time.monotonic()
        reloaded = ctl(stack, "config", "reload")
        assert reloaded.returncode == 0, reloaded.stderr
        await wait_for_all(heard, started)
        for client in (http, sse, modern):
            assert "code_review" in {t.name for t in (await client.list_tools()).tools}
            # code_review's default provider is anthropic; summarize's is gemini (no key)
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            assert prompts == ["code_review"]

        # and back: the key removed, the tools and prompts go, and everyone hears it again
        for one in heard.values():
            one.kinds.clear()
        write_env_file(stack, "")
        started = time.monotonic()
        reloaded = ctl(stack, "config", "reload")
        assert reloaded.returncode == 0, reloaded.stderr
        await wait_for_all(heard, started)
        for client in (http, sse, modern):
            assert (await client.list_prompts()).prompts == []
