"""What tracing costs: `/v1/chat/completions` through the whole stack with tracing off (the
default) and on (spans and GenAI metrics exported over OTLP/HTTP to a receiver on loopback),
against the fake provider. The two stacks run one after the other, off first.

    .venv/bin/python bench/tracing.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess, Row, machine_line, measure, print_rows
from bench.gateway import stack_config
from tests.fakes.otlp import OTLPReceiver
from tests.helpers import Stack

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


async def completions(url: str, label: str, calls: int) -> list[Row]:
    rows = []
    async with aiohttp.ClientSession() as session:

        async def one() -> object:
            async with session.post(f"{url}/v1/chat/completions", json=BODY) as response:
                if response.status != 200:
                    raise RuntimeError(await response.text())
                return await response.read()

        await measure("warm-up", one, 4, 50)
        for concurrency in (1, 32):
            rows.append(await measure(label, one, concurrency, calls))
    return rows


async def run(calls: int) -> None:
    print(f"SealGate tracing benchmark, {calls} calls per row where the time allows")
    print(machine_line())
    rows: list[Row] = []
    with FakeProcess() as fake:
        receiver = OTLPReceiver().start()
        try:
            for label, env in (
                ("/v1/chat/completions, tracing off", {}),
                (
                    "/v1/chat/completions, tracing on (OTLP)",
                    {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
                ),
            ):
                stack = Stack(env=env, config_text=stack_config(fake.base))
                try:
                    stack.start()
                    rows += await completions(stack.url, label, calls)
                finally:
                    stack.stop()
                    stack.cleanup()
        finally:
            receiver.stop()
    print("\n/v1 through sandbox and guardian, tracing off and on:")
    floor = {row.concurrency: row for row in rows[:2]}
    print_rows(rows, floor)
    print(f"  spans received: {len(receiver.spans)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per row (max 20000)")
    calls = max(64, min(parser.parse_args().calls, 20_000))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(calls))


if __name__ == "__main__":
    main()
