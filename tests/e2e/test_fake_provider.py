"""`bench/fake_provider.py` with `bench/fake.pyfun`: SealGate tried without a key (issue 15,
item 8). One process speaks every wire format the tests' fakes speak, on the port asked for."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest
from openai import OpenAI

from bench.fake_provider import pyfun_for
from tests.e2e.mcp_client import mcp_session
from tests.helpers import ROOT, Stack, free_port


@pytest.fixture(scope="module")
def fake_port() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert int(process.stdout.readline()) == port
        yield port
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def tried(fake_port: int) -> Iterator[Stack]:
    config = pyfun_for(fake_port)
    stack = Stack(config_text=config)
    try:
        yield stack.start()
    finally:
        stack.cleanup()


@pytest.mark.parametrize(
    ("provider", "marker"),
    [("anthropic", "(fake Anthropic)"), ("gemini", "(fake Gemini)"), ("local", "quick brown")],
)
def test_every_llm_wire_format_answers(tried: Stack, provider: str, marker: str) -> None:
    async def ask() -> str:
        async with mcp_session(tried.url) as client:
            result = await client.call_tool("llm_complete", {"prompt": "Hi", "provider": provider})
        return result.structured_content["text"]

    assert marker in asyncio.run(ask())


@pytest.mark.parametrize("provider", ["brave", "tavily"])
def test_every_search_wire_format_answers(tried: Stack, provider: str) -> None:
    async def search() -> list[object]:
        async with mcp_session(tried.url, "sse") as client:
            result = await client.call_tool(
                "web_search", {"query": "sealgate", "max_results": 2, "provider": provider}
            )
        return result.structured_content["results"]

    assert len(asyncio.run(search())) == 2


def test_the_openai_sdk_streams_from_the_fake(tried: Stack) -> None:
    with OpenAI(base_url=f"{tried.url}/v1", api_key="unused", max_retries=0) as client:
        chunks = client.chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("(fake Anthropic)")
