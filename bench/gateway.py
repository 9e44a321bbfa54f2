"""Whole-stack benchmark: MCP `llm_complete` through SealGate vs the fake provider alone, and
the outbound HTTP transports side by side. Everything on loopback, bounded in count and time.

    .venv/bin/python bench/gateway.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    FakeProcess,
    Row,
    machine_line,
    measure,
    percentile,
    print_rows,
)
from guardian.calls.outbound import HttpOutbound
from guardian.providers.adapters import OpenAIAdapter
from guardian.providers.types import ChatRequest
from protocol.pyfun import ProviderConfig
from tests.e2e.mcp_client import mcp_session
from tests.helpers import Stack

BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 64,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def stack_config(base: str) -> str:
    return f"""[LLM_PROVIDER.fake]
api = "openai"
base_url = "{base}"
allow_insecure = "true"
requires_key = "false"
default_model = "bench-model"
[LLM_PROVIDER.fake_END]
"""


async def transports(base: str, calls: int) -> list[Row]:
    provider = ProviderConfig(
        name="fake", kind="llm", api="openai", base_url=base, env_keys=(), requires_key=False
    )
    call = OpenAIAdapter(provider).chat(
        None, ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]), stream=False
    )
    rows = []
    outbound = HttpOutbound()

    async def shipped() -> object:
        return await outbound.json("fake", call, timeout=10, max_bytes=1 << 20)

    await measure("warm-up", shipped, 4, 50)
    for concurrency in (1, 32):
        rows.append(
            await measure("guardian Outbound (aiohttp, shipped)", shipped, concurrency, calls)
        )
    await outbound.aclose()
    # For scale, the clients ECOSYSTEM.md lists that guardian/calls/outbound.py does not ship.
    import httpx2

    url = f"{base}/chat/completions"
    async with httpx.AsyncClient(timeout=10) as client:

        async def with_httpx() -> object:
            return (await client.post(url, json=call.json)).content

        for concurrency in (1, 32):
            rows.append(
                await measure("httpx 0.28 default (not shipped)", with_httpx, concurrency, calls)
            )
    async with httpx2.AsyncClient(timeout=10) as client2:

        async def with_httpx2() -> object:
            return (await client2.post(url, json=call.json)).content

        for concurrency in (1, 32):
            rows.append(await measure("httpx2 (not shipped)", with_httpx2, concurrency, calls))
    return rows


async def direct(base: str, calls: int) -> dict[int, Row]:
    floor = {}
    async with aiohttp.ClientSession() as session:

        async def one() -> object:
            async with session.post(f"{base}/chat/completions", json=BODY) as response:
                return await response.read()

        await measure("warm-up", one, 4, 50)
        for concurrency in (1, 32):
            floor[concurrency] = await measure(
                "fake provider directly (floor)", one, concurrency, calls
            )
    return floor


async def through_mcp(url: str, calls: int) -> list[Row]:
    """Each worker keeps one MCP session open (entered and left in its own task)."""
    rows = []
    for concurrency in (1, 32):
        latencies: list[float] = []
        per_worker = max(2, calls // 4 // concurrency)

        async def worker(latencies: list[float] = latencies, per_worker: int = per_worker) -> None:
            async with mcp_session(url) as client:
                for index in range(per_worker + 2):
                    started = time.perf_counter()
                    result = await client.call_tool("llm_complete", {"prompt": "hi"})
                    if result.is_error:
                        raise RuntimeError(str(result.content[0]))
                    if index >= 2:  # the first two calls warm the session up
                        latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        rows.append(
            Row(
                "MCP llm_complete via SealGate (http)",
                concurrency,
                percentile(latencies, 0.5) * 1e3,
                percentile(latencies, 0.99) * 1e3,
                len(latencies) / elapsed,
            )
        )
    return rows


async def run(calls: int) -> None:
    print(f"SealGate gateway benchmark, {calls} calls per row where the time allows")
    print(machine_line())
    with FakeProcess() as fake:
        floor = await direct(fake.base, calls)
        print("\nOutbound HTTP transports (guardian/calls/outbound.py) against the fake:")
        print_rows(await transports(fake.base, calls))
        stack = Stack(config_text=stack_config(fake.base))
        try:
            stack.start()
            rows = await through_mcp(stack.url, calls)
        finally:
            stack.stop()
            stack.cleanup()
        print("\nMCP llm_complete over Streamable HTTP vs the fake alone:")
        print_rows([floor[1], floor[32], *rows], floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per row (max 20000)")
    calls = max(64, min(parser.parse_args().calls, 20_000))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(calls))


if __name__ == "__main__":
    main()
