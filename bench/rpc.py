"""Sealed RPC round trip against a real guardian process over its Unix socket.

    make bench        (or: .venv/bin/python bench/rpc.py [--calls N])

Three calls: `health` (no params; the guardian answers its result Struct), the same answer
decoded into that Struct as the sandbox's stub does, and an `llm.complete` params map of 20
chat messages whose last field is out of bounds, so the guardian decodes and checks the whole
map and answers `invalid_params` without running a handler: the cost of the typed contract
on the socket, both ways.
Prints p50/p99 latency and calls/s at concurrency 1 and 64 on one multiplexed connection,
and the Python and CPU they ran on; then `health` at concurrency 1 again with the cores held
out of their idle states (run as root), which shows what waking a sleeping core costs.
Bounded in count and time; touches only a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cores_awake, cpu_model, idle_driver, percentile
from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from protocol.contract_results import HealthResult, decode_result
from protocol.errors import InvalidParams
from tests.helpers import GuardianProcess

#: An llm.complete params map as an OpenAI client sends it; `max_tokens` (last) is out of
#: bounds, so the guardian checks every field before it refuses.
REFUSED_COMPLETE = {
    "caller": {"ip": "127.0.0.1", "user_agent": "bench", "credential": "sg_" + "x" * 40},
    "tool": "llm_complete",
    "model": "fake-model",
    "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 40} for i in range(20)
    ],
    "temperature": 0.2,
    "max_tokens": 0,
}


async def _health(client: RPCClient) -> None:
    await client.call("health", {})


async def _health_typed(client: RPCClient) -> None:
    decode_result(HealthResult, await client.call("health", {}))


async def _refused_complete(client: RPCClient) -> None:
    try:
        await client.call("llm.complete", REFUSED_COMPLETE)
    except InvalidParams:
        return
    raise SystemExit("the guardian accepted an llm.complete with max_tokens 0")


CALLS = {
    "health": _health,
    "health, decoded into HealthResult (the sandbox's stub)": _health_typed,
    "llm.complete params (refused at the last field)": _refused_complete,
}


async def measure(
    client: RPCClient, concurrency: int, calls: int, call: Any = _health
) -> dict[str, float]:
    latencies: list[float] = []
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            await call(client)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "p50_us": percentile(latencies, 0.50) * 1e6,
        "p99_us": percentile(latencies, 0.99) * 1e6,
        "mean_us": statistics.fmean(latencies) * 1e6,
        "calls_per_s": len(latencies) / elapsed,
    }


async def run(calls: int) -> None:
    guardian = GuardianProcess().start()
    try:

        async def connect() -> SocketChannel:
            return await open_unix_channel(str(guardian.socket_path))

        client = RPCClient(connect, client_name="sandbox", hello_params={"listen": ["127.0.0.1"]})
        client.start()
        if not await client.wait_connected(10):
            raise SystemExit(f"guardian did not answer:\n{guardian.logs()}")
        print(f"sealed RPC round trip, one connection, {calls} calls per row")
        print(
            f"python {platform.python_version()} ({platform.python_implementation()}), "
            f"uvloop {version('uvloop')}, CPU: {cpu_model()}, idle states: {idle_driver()}"
        )
        for label, call in CALLS.items():
            await measure(client, 1, 500, call)  # warm-up
            print(f"{label}:")
            print(f"{'concurrency':>11}  {'p50 us':>8}  {'p99 us':>8}  {'calls/s':>9}")
            for concurrency in (1, 64):
                _print_row(concurrency, await measure(client, concurrency, calls, call))
        # At concurrency 1 both processes sleep between calls, so each call wakes two idle
        # cores; how deep they sleep is the machine's (its cpuidle driver), not the RPC's.
        with cores_awake() as held:
            if held:
                print(f"health, with the cores held awake (idle states: {idle_driver()} -> none):")
                _print_row(1, await measure(client, 1, calls))
            else:
                print("health with the cores held awake: not measured (needs root)")
        await client.close()
    finally:
        guardian.stop()


def _print_row(concurrency: int, row: dict[str, float]) -> None:
    print(
        f"{concurrency:>11}  {row['p50_us']:>8.1f}  {row['p99_us']:>8.1f}"
        f"  {row['calls_per_s']:>9,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per row (max 200000)")
    args = parser.parse_args()
    calls = max(64, min(args.calls, 200_000))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(calls))


if __name__ == "__main__":
    main()
