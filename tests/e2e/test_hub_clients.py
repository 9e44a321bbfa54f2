"""The original Universal MCP Hub's clients, unchanged, against SealGate.

`OriginalClient` sends exactly what the original's REST clients send (its PySide6 desktop
client and its WordPress plugin): `GET /` with a bearer token to see that the hub runs, and
`POST /api` with `{"tool", "params"}`, every form field present (an empty string when the
person left it blank) and the original's parameter names (`provider_name`, `model_name`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.mcp_client import mcp_session
from tests.e2e.world import KEYS, World, config_for
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeAnthropic, FakeBrave, FakeGemini, FakeOpenAI, FakeTavily
from tests.helpers import Stack

TOKEN = "bootstrap-token-hubclients-0123456789"


class OriginalClient:
    """The original hub's REST client, as its desktop client and WordPress plugin speak."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def status(self) -> httpx.Response:
        return httpx.get(f"{self.url}/", headers={"Authorization": self.headers["Authorization"]})

    def call(self, tool: str, params: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api",
            json={"tool": tool, "params": params},
            headers=self.headers,
            timeout=30,
        )


@pytest.fixture(scope="module")
def hub() -> Iterator[World]:
    fakes: dict[str, Any] = {
        "anthropic": FakeAnthropic(name="anthropic", reply_text="Claude says hello to you"),
        "gemini": FakeGemini(name="gemini", reply_text="Gemini says hello to you"),
        "openrouter": FakeOpenAI(name="openrouter", reply_text="OpenRouter says hello"),
        "huggingface": FakeOpenAI(name="huggingface", reply_text="HuggingFace says hello"),
        "local": FakeOpenAI(name="local", reply_text="Local model says hello"),
        "brave": FakeBrave(name="brave"),
        "tavily": FakeTavily(name="tavily"),
    }
    for fake in fakes.values():
        fake.start()
    stack = Stack(env={**KEYS, "SEALGATE_BOOTSTRAP_TOKEN": TOKEN}, config_text=config_for(fakes))
    try:
        stack.start()
        yield World(stack=stack, **fakes)
    finally:
        stack.cleanup()
        for fake in fakes.values():
            fake.stop()


@pytest.fixture
def client(hub: World) -> OriginalClient:
    for fake in hub.fakes:
        fake.requests.clear()
        fake.default = Behaviour()
    return OriginalClient(hub.stack.url, TOKEN)


def test_status_is_json_for_clients_and_a_page_for_browsers(
    hub: World, client: OriginalClient
) -> None:
    reply = client.status()
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["status"] == "running" and body["service"] == "SealGate test"
    assert isinstance(body["uptime_seconds"], int) and body["uptime_seconds"] >= 0
    browser = httpx.get(
        f"{hub.stack.url}/",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": "text/html,*/*;q=0.8"},
    )
    assert browser.status_code == 200 and "<h1>SealGate test</h1>" in browser.text
    wrong = OriginalClient(hub.stack.url, "not-a-token").status()
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthenticated"
    anonymous = httpx.get(f"{hub.stack.url}/")  # no credential: the login form, as before
    assert anonymous.status_code == 401 and "<form id=login>" in anonymous.text


def test_llm_answer_is_text_with_details_beside_it(hub: World, client: OriginalClient) -> None:
    reply = client.call(
        "llm_complete",
        {"prompt": "Hello", "provider_name": "", "model": "", "max_tokens": ""},
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["result"] == "Claude says hello to you"
    meta = body["meta"]
    assert meta["provider"] == "anthropic" and meta["model"] == "claude-test"
    assert meta["fallback_path"] == [] and meta["usage"]["output_tokens"] > 0
    assert meta["cost_usd"] > 0 and meta["text"] == body["result"]


def test_original_parameter_names(hub: World, client: OriginalClient) -> None:
    pinned = client.call(
        "llm_complete", {"prompt": "Hi", "provider_name": "gemini", "max_tokens": 50}
    )
    assert pinned.status_code == 200, pinned.text
    assert pinned.json() == {"result": "Gemini says hello to you", "meta": pinned.json()["meta"]}
    assert pinned.json()["meta"]["provider"] == "gemini" and hub.anthropic.requests == []
    configured = client.call("summarize", {"prompt": "A long text", "provider_name": ""})
    assert configured.json()["result"] == "Claude says hello to you"
    for params in ({"query": "sealgate", "max_results": 2}, {"prompt": "sealgate"}):
        found = client.call("web_search", {**params, "provider": ""})
        assert found.status_code == 200, found.text
        first = found.json()["meta"]["results"][0]
        assert isinstance(found.json()["result"], str) and first["url"] in found.json()["result"]
    info = client.call("get_model_info", {"model_name": "claude-test"})
    assert info.status_code == 200, info.text
    assert [m["id"] for m in info.json()["result"]["models"]] == ["claude-test"]
    # db_query's `sql` is SealGate's own name too: tests/security/test_db_query.py sends it.


def test_the_clients_generic_keys_reach_every_tool(hub: World, client: OriginalClient) -> None:
    """The original's client sends the same four keys to every tool; a tool ignores those it
    does not take (the original did), and still refuses any other unknown name."""
    generic = {"prompt": "sealgate", "provider_name": "", "model": "claude-test", "max_tokens": 64}
    found = client.call("web_search", generic)
    assert found.status_code == 200, found.text
    assert found.json()["meta"]["results"], found.text
    for tool in ("health_check", "list_active_tools", "get_model_info"):
        answer = client.call(tool, generic)
        assert answer.status_code == 200, (tool, answer.text)
    info = client.call("get_model_info", generic).json()["result"]
    assert [m["id"] for m in info["models"]] == ["claude-test"]  # `model` is its own
    refused = client.call("web_search", {**generic, "colour": "red"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "unknown parameter(s) for web_search: colour"
    log = hub.stack.log_path.read_text()
    assert log.count("web_search does not take max_tokens, model") == 1, log[-2000:]


def test_errors_keep_code_and_message(client: OriginalClient) -> None:
    missing = client.call("web_search", {"query": "", "prompt": ""})
    assert missing.status_code == 400
    assert missing.json() == {
        "error": {
            "code": "invalid_params",
            "message": "missing parameter(s) for web_search: query",
        }
    }
    unknown = client.call("no_such_tool", {})
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"code", "message"}


def test_list_active_tools_has_the_original_keys(client: OriginalClient) -> None:
    listed = client.call("list_active_tools", {}).json()["result"]
    assert listed["active_tools"] == listed["tools"] and "llm_complete" in listed["active_tools"]
    assert set(listed["active_llm_providers"]) >= {"anthropic", "gemini", "local"}
    assert listed["active_search_providers"] == listed["search_providers"]
    assert "claude-test" in listed["available_models"]
    # SealGate's own client reads the canonical names only
    assert listed["tool_params"]["web_search"] == ["query", "max_results", "provider"]
    assert "provider_name" not in listed["tool_params"]["llm_complete"]


def test_mcp_tools_take_the_same_names(hub: World) -> None:
    async def run() -> tuple[Any, Any, Any, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with mcp_session(hub.stack.url, headers=headers) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            answer = await session.call_tool(
                "llm_complete", {"prompt": "Hi", "provider_name": "gemini", "model": ""}
            )
            found = await session.call_tool("web_search", {"prompt": "x", "max_results": 1})
            info = await session.call_tool("get_model_info", {"model_name": "claude-test"})
            return answer, found, info, tools

    answer, found, info, tools = asyncio.run(run())
    assert not answer.is_error and answer.content[0].text == "Gemini says hello to you"
    assert not found.is_error and len(found.structured_content["results"]) == 1
    assert [m["id"] for m in info.structured_content["models"]] == ["claude-test"]
    schema = tools["llm_complete"].input_schema
    assert schema["required"] == ["prompt"] and "provider_name" in schema["properties"]
    assert {"query", "prompt"} <= set(tools["web_search"].input_schema["properties"])
