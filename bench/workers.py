"""`HUB_SANDBOX_WORKERS` 1 and 2 side by side (issue 33 item 3): `/v1/chat/completions`
through SealGate at concurrency 1, 16 and 32 on one fake provider on loopback, and the CPU
each process used meanwhile (the guardian, every sandbox process, and the rest: wrk and the
fake), so a run on a small machine says where the cores went.

    .venv/bin/python bench/workers.py [--seconds 4] [--pin]

`--pin` puts wrk and the fake on the first CPU of this process's set (`sched_setaffinity`,
what `taskset -c` does) and leaves SealGate the others; on a 2-core machine that leaves it
one core, so it is off by default and the rows report contention instead. Everything on
127.0.0.1 and bounded: two stacks, four rows each (the last: MCP `llm_complete` over
16 Streamable HTTP sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess, Row, machine_line
from bench.vs_litellm import load, mcp_rows, stack_config
from tests.helpers import Stack

CONCURRENCY = (1, 16, 32)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of `pid` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_serving(stack: Stack, workers: int, timeout: float = 30) -> list[int]:
    """Until `workers` sandbox processes serve and each has linked to the guardian."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = stack.pids_of("sandbox")
        logs = stack.logs()
        if len(pids) == workers and all(f"sandbox[{p}] INFO" in logs for p in pids):
            if all(f"sandbox[{p}] INFO sealgate.sandbox: sandbox serving" in logs for p in pids):
                return pids
        time.sleep(0.1)
    raise SystemExit(f"{workers} sandbox processes did not start:\n{stack.logs()[-3000:]}")


async def rows_for(
    fake: FakeProcess, workers: int, seconds: int, stack_cpus: set[int], load_cpus: set[int]
) -> list[tuple[Row, str]]:
    """The rows of one stack: started on `stack_cpus`, loaded by wrk on `load_cpus`."""
    stack = Stack(
        config_text=stack_config(fake.base),
        single_uid=True,
        env={"HUB_SANDBOX_WORKERS": str(workers)},
    )
    os.sched_setaffinity(0, stack_cpus)  # the supervisor and its children inherit it
    try:
        stack.start()
    finally:
        os.sched_setaffinity(0, load_cpus)  # wrk, started from here, inherits this
    try:
        sandboxes = wait_serving(stack, workers)
        guardian = stack.pid_of("guardian")
        url = f"{stack.url}/v1/chat/completions"
        await load("warm-up", url, 16, 1)
        out = []
        label = f"/v1, {workers} sandbox process(es)"
        runs = [(c, load(label, url, c, seconds)) for c in CONCURRENCY]
        # MCP sessions: each keeps its connection, so 16 sessions spread over the processes
        mcp_label = f"MCP llm_complete, {workers} process(es)"
        runs.append((16, mcp_rows(stack.url, 16, 400 * seconds, mcp_label)))
        for _concurrency, measured in runs:
            before = {pid: cpu_seconds(pid) for pid in (guardian, *sandboxes)}
            started = time.monotonic()
            row = await measured
            elapsed = time.monotonic() - started
            used = {pid: (cpu_seconds(pid) - before[pid]) / elapsed for pid in before}
            share = f"guardian {used[guardian]:.0%}, sandbox " + " + ".join(
                f"{used[pid]:.0%}" for pid in sandboxes
            )
            out.append((row, share))
        return out
    finally:
        stack.stop()
        stack.cleanup()


async def run(seconds: int, pin: bool) -> None:
    print("SealGate with 1 and 2 sandbox processes (HUB_SANDBOX_WORKERS), one fake on loopback")
    print(machine_line())
    cpus = sorted(os.sched_getaffinity(0))
    pin = pin and len(cpus) > 1
    load_cpus = {cpus[0]} if pin else set(cpus)
    stack_cpus = set(cpus[1:]) if pin else set(cpus)
    results: list[tuple[Row, str]] = []
    os.sched_setaffinity(0, load_cpus)
    try:
        with FakeProcess() as fake:  # started on load_cpus
            for workers in (1, 2):
                results += await rows_for(fake, workers, seconds, stack_cpus, load_cpus)
    finally:
        os.sched_setaffinity(0, set(cpus))
    if pin:
        where = f"wrk and the fake on CPU {cpus[0]}, SealGate on CPU {sorted(stack_cpus)}"
    else:
        where = f"unpinned: wrk, the fake and SealGate share {len(cpus)} CPUs"
    print(f"  ({where}; CPU as a share of one core over each row)")
    print(f"  {'what':<34} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9}  CPU")
    for row, share in results:
        print(
            f"  {row.label:<34} {row.concurrency:>3} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f}"
            f" {row.per_s:>9,.0f}  {share}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4, help="per row (max 30)")
    parser.add_argument("--pin", action="store_true", help="wrk and the fake on one CPU")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(max(1, min(args.seconds, 30)), args.pin))


if __name__ == "__main__":
    main()
