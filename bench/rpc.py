"""Sealed RPC round trip: `health` against a real guardian process over its Unix socket.

    make bench        (or: .venv/bin/python bench/rpc.py [--calls N])

Prints p50/p99 latency and calls/s at concurrency 1 and 64 on one multiplexed connection,
and the Python and CPU they ran on. Bounded in count and time; touches only a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_model, percentile
from protocol.channel import SocketChannel, open_unix_channel
from protocol.client import RPCClient
from tests.helpers import GuardianProcess


async def measure(client: RPCClient, concurrency: int, calls: int) -> dict[str, float]:
    latencies: list[float] = []
    per_worker = calls // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            await client.call("health", {})
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
        await measure(client, 1, 500)  # warm-up
        print(f"sealed RPC `health` round trip, one connection, {calls} calls per row")
        print(
            f"python {platform.python_version()} ({platform.python_implementation()}), "
            f"uvloop {uvloop.__version__}, CPU: {cpu_model()}"
        )
        print(f"{'concurrency':>11}  {'p50 us':>8}  {'p99 us':>8}  {'calls/s':>9}")
        for concurrency in (1, 64):
            row = await measure(client, concurrency, calls)
            print(
                f"{concurrency:>11}  {row['p50_us']:>8.1f}  {row['p99_us']:>8.1f}"
                f"  {row['calls_per_s']:>9,.0f}"
            )
        await client.close()
    finally:
        guardian.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per row (max 200000)")
    args = parser.parse_args()
    calls = max(64, min(args.calls, 200_000))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(calls))


if __name__ == "__main__":
    main()
