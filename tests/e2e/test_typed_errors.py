"""A sealed call's refusal keeps its type all the way to the client: over MCP the error
result carries `{"error": {"code", "message"}}` as structured content beside the text MCP
clients read (`code: message`, as before), and `POST /api` answers the same code and message
with its status. Nothing parses the code back out of a string."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.mcp_client import mcp_session
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.security.common import provider_block

#: (tool, arguments, status over /api, code): a guardian refusal and an argument refusal.
CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("get_model_info", {"model": "no-such-model"}, 404, "not_found"),
    ("llm_complete", {"prompt": "x", "max_tokens": "many"}, 400, "invalid_params"),
    ("llm_complete", {"prompt": "x", "max_tokens": 0}, 400, "invalid_params"),
]


def test_refusals_stay_typed_over_mcp_and_the_json_api(
    stack_factory: Callable[..., Stack],
) -> None:
    fake = FakeOpenAI(name="fake").start()
    try:
        stack = stack_factory(config_text=provider_block(fake, keyed=False))

        async def over_mcp() -> list[Any]:
            async with mcp_session(stack.url) as client:
                return [await client.call_tool(tool, args) for tool, args, _, _ in CASES]

        results = asyncio.run(over_mcp())
        for (tool, arguments, status, code), result in zip(CASES, results, strict=True):
            assert result.is_error
            error = result.structured_content["error"]
            assert error["code"] == code, (tool, error)
            assert result.content[0].text == f"{code}: {error['message']}"
            api = httpx.post(
                f"{stack.url}/api", json={"tool": tool, "params": arguments}, timeout=30
            )
            assert api.status_code == status
            assert api.json() == {"error": error}
    finally:
        fake.stop()
