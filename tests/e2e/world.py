"""The shared world of the provider tests: one stack wired to one fake per wire format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.mcp_client import mcp_session
from tests.fakes.base import Behaviour, FakeServer
from tests.fakes.providers import FakeAnthropic, FakeBrave, FakeGemini, FakeOpenAI, FakeTavily
from tests.helpers import Stack

KEYS = {
    "ANTHROPIC_API_KEY": "fake-ant-first-0000000000000001",
    "ANTHROPIC_API_KEY_2": "fake-ant-second-000000000000002",
    "GEMINI_API_KEY": "fake-aiza-gemini-00000000000000003",
    "OPENROUTER_API_KEY": "fake-or-openrouter-0000000000004",
    "HF_TOKEN": "fake-hf-huggingface-000000000000005",
    "BRAVE_API_KEY": "BSA-FAKE-brave-0000000000000000006",
    "TAVILY_API_KEY": "fake-tvly-tavily-00000000000000007",
}


@dataclass
class World:
    stack: Stack
    anthropic: FakeAnthropic
    gemini: FakeGemini
    openrouter: FakeOpenAI
    huggingface: FakeOpenAI
    local: FakeOpenAI
    brave: FakeBrave
    tavily: FakeTavily

    @property
    def fakes(self) -> list[FakeServer]:
        return [
            self.anthropic,
            self.gemini,
            self.openrouter,
            self.huggingface,
            self.local,
            self.brave,
            self.tavily,
        ]


def config_for(w: dict[str, FakeServer], provider_timeout_s: int | None = None) -> str:
    """The e2e world's configuration; `provider_timeout_s` sets every provider's per-chunk
    timeout instead of the short ones the timeout tests rely on."""

    def block(kind: str, name: str, base: str, **keys: str) -> str:
        if provider_timeout_s is not None and "timeout_sec" in keys:
            keys["timeout_sec"] = str(provider_timeout_s)
        lines = [f"[{kind}.{name}]", f'base_url = "{base}"', 'allow_insecure = "true"']
        lines += [f'{k} = "{v}"' for k, v in keys.items()]
        return "\n".join([*lines, f"[{kind}.{name}_END]"])

    return "\n".join(
        [
            '[HUB]\nname = "SealGate test"\nbody_timeout_s = "3"\n[HUB_END]',
            block(
                "LLM_PROVIDER",
                "anthropic",
                f"{w['anthropic'].base}/v1",
                env_key="ANTHROPIC_API_KEY, ANTHROPIC_API_KEY_2",
                default_model="claude-test",
                fallback_to="gemini",
                timeout_sec="3",
                anthropic_beta="allowed-beta-2025-01-01",
            ),
            block(
                "LLM_PROVIDER",
                "gemini",
                f"{w['gemini'].base}/v1beta",
                env_key="GEMINI_API_KEY",
                default_model="gemini-test",
                fallback_to="openrouter",
                timeout_sec="3",
            ),
            block(
                "LLM_PROVIDER",
                "openrouter",
                f"{w['openrouter'].base}/v1",
                api="openai",
                env_key="OPENROUTER_API_KEY",
                default_model="meta/llama:free",
                fallback_to="huggingface",
                timeout_sec="1",
                header_http_referer="https://sealgate.test",
                header_x_title="SealGate",
            ),
            block(
                "LLM_PROVIDER",
                "huggingface",
                f"{w['huggingface'].base}/v1",
                env_key="HF_TOKEN",
                default_model="hf/model",
                timeout_sec="3",
            ),
            block(
                "LLM_PROVIDER",
                "local",
                f"{w['local'].base}/v1",
                api="openai",
                requires_key="false",
                default_model="llama-local",
                timeout_sec="1",
            ),
            block(
                "SEARCH_PROVIDER",
                "brave",
                f"{w['brave'].base}/res/v1/web/search",
                env_key="BRAVE_API_KEY",
                fallback_to="tavily",
            ),
            block(
                "SEARCH_PROVIDER", "tavily", f"{w['tavily'].base}/search", env_key="TAVILY_API_KEY"
            ),
            '[MODEL.claude-test]\nprovider = "anthropic"\ncost_input_per_1m = "3"\n'
            'cost_output_per_1m = "15"\nmax_output_tokens = "512"\n[MODEL.claude-test_END]',
            '[MODEL.rationed]\nprovider = "local"\nrequests_per_min = "1"\n[MODEL.rationed_END]',
            '[TOOL.summarize]\nprovider_type = "llm"\ndefault_provider = "anthropic"\n'
            'system_prompt = "Summarize briefly."\ndescription = "Summarize a text."\n[TOOL.summarize_END]',
            '[TOOL.web_search]\nprovider_type = "search"\ndefault_provider = "brave"\n[TOOL.web_search_END]',
        ]
    )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
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
    stack = Stack(env=KEYS, config_text=config_for(fakes))
    try:
        stack.start()
        yield World(stack=stack, **fakes)
    finally:
        stack.cleanup()
        for fake in fakes.values():
            fake.stop()


@pytest.fixture
def w(world: World) -> World:
    for fake in world.fakes:
        fake.requests.clear()
        fake.refuse_keys.clear()
        fake.default = Behaviour()
        fake._queue.clear()
    return world


async def call(w: World, tool: str, args: dict[str, Any], **kwargs: Any) -> Any:
    async with mcp_session(w.stack.url) as client:
        return await client.call_tool(tool, args, **kwargs)
