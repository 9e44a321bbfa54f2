"""What receipts cost: `POST /v1/chat/completions` through the whole stack with receipts on
and off (`[HUB_LIMITS] audit_receipts`), alternated, and the guardian's added work in
process (the request's digest and the Ed25519 signature, once per call).

    .venv/bin/python bench/receipts.py [--calls N] [--rounds R] [--blocks B] [--wrk S]

The whole-stack rows run in R off/on pairs (a fresh stack each), off first then on first in
turn (ABBA), because the machine drifts; the added p50 is reported per pair and as the median
over the pairs. Two fresh stacks differ by more than a receipt (where the scheduler puts
their processes moves a pair's p50 at concurrency 1 by +-0.5 ms on two cores), so the same is
also measured in one stack: receipts switched off and on by a configuration reload between
B blocks of calls (ABBA), the same processes throughout; with `--wrk S`, each block is S
seconds of wrk instead of N calls from this script's Python client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess, Row, cpu_ns, machine_line, measure, print_rows, wrk
from guardian.storage.base import UsageRow
from guardian.tlog import receipts
from guardian.tlog.signing_key import SigningKey
from tests.helpers import Stack, run_ctl

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


def stack_config(base: str, on: bool) -> str:
    return f"""[HUB_LIMITS]
audit_receipts = "{"true" if on else "false"}"
[HUB_LIMITS_END]
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{base}"
allow_insecure = "true"
requires_key = "false"
default_model = "bench-model"
[LLM_PROVIDER.fake_END]
"""


def v1_call(
    session: aiohttp.ClientSession, url: str, receipts_on: Callable[[], bool]
) -> Callable[[], Awaitable[object]]:
    """One `/v1` chat completion, checked to carry a receipt exactly when they are on."""

    async def one() -> object:
        async with session.post(f"{url}/v1/chat/completions", json=BODY) as answer:
            if answer.status != 200 or ("sealgate-receipt" in answer.headers) != receipts_on():
                raise RuntimeError(f"unexpected answer {answer.status}")
            return await answer.read()

    return one


async def through_v1(base: str, on: bool, calls: int) -> list[Row]:
    stack = Stack(config_text=stack_config(base, on))
    label = f"/v1 chat completion, receipts {'on' if on else 'off'}"
    try:
        stack.start()
        async with aiohttp.ClientSession() as session:
            one = v1_call(session, stack.url, lambda: on)
            await measure("warm-up", one, 4, 100)
            return [await measure(label, one, concurrency, calls) for concurrency in (1, 16)]
    finally:
        stack.stop()
        stack.cleanup()


async def switched_in_one_stack(
    base: str, calls: int, blocks: int, wrk_seconds: int, stack_cpus: set[int] | None
) -> tuple[dict[int, list[float]], dict[tuple[str, bool], list[float]]]:
    """The added p50 at concurrency 1 and 16 per pair of blocks (us), and the guardian's and
    the sandbox's CPU per call at 1 in each block, off and on (us): one stack, receipts
    switched by rewriting `audit_receipts` and `sealgate-ctl config reload` before each
    block. `wrk_seconds`: each block is wrk for that long (a client in C, whose own work
    and jitter are a fraction of this Python client's), else `calls` calls from here.
    `stack_cpus`: the stack's processes start on these CPUs (this one stays where it is)."""
    stack = Stack(config_text=stack_config(base, False))
    admin = stack.runtime / "guardian" / "admin.sock"
    here = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, stack_cpus or here)  # the supervisor and its children inherit it
        try:
            stack.start()
        finally:
            os.sched_setaffinity(0, here)
        async with aiohttp.ClientSession() as session:
            on = False
            one = v1_call(session, stack.url, lambda: on)  # `on` as switched below
            url = f"{stack.url}/v1/chat/completions"
            await measure("warm-up", one, 4, 200)
            p50: dict[tuple[int, bool], list[float]] = {}
            cpu: dict[tuple[str, bool], list[float]] = {}
            pids = {"guardian": stack.pid_of("guardian"), "sandbox": stack.pid_of("sandbox")}
            # concurrency 1 first (the target's), then 16 in fewer blocks: mixed, each row
            # would start from the other's state
            for concurrency, count in ((1, blocks), (16, max(4, blocks // 4))):
                for block in range(count):
                    on = block % 4 in (1, 2)  # off, on, on, off, ...
                    stack.config.write_text(stack_config(base, on))
                    reloaded = await asyncio.to_thread(run_ctl, admin, "config", "reload")
                    if reloaded.returncode != 0:
                        raise RuntimeError(f"reload failed: {reloaded.stderr}")
                    await measure("settle", one, concurrency, 50)  # and checked on or off
                    measured = None
                    before = {name: cpu_ns(pid) for name, pid in pids.items()}
                    started = time.monotonic()
                    if wrk_seconds:
                        measured = await asyncio.to_thread(
                            wrk, url, concurrency, wrk_seconds, BODY, {}
                        )
                    row = measured or await measure("", one, concurrency, calls)
                    answered = row.per_s * (time.monotonic() - started)
                    p50.setdefault((concurrency, on), []).append(row.p50_ms)
                    if concurrency == 1:
                        for name, pid in pids.items():
                            used = (cpu_ns(pid) - before[name]) / 1e3 / max(answered, 1)
                            cpu.setdefault((name, on), []).append(used)
            added = {
                c: [(b - a) * 1e3 for a, b in zip(p50[c, False], p50[c, True], strict=False)]
                for c in (1, 16)
            }
            return added, cpu
    finally:
        stack.stop()
        stack.cleanup()


#: Several times a core's own caches (L1, L2): written through between two receipts, it
#: leaves each as cold as a receipt is on an answer's path, after the rest of the call.
_FLUSH = bytearray(32 << 20)


def _flush_caches() -> None:
    _FLUSH[::64] = bytes(len(_FLUSH) // 64)  # one write per cache line


def in_process(rounds: int = 2000, cold: bool = False) -> tuple[float, float]:
    """(digest us, receipt us): the median of `rounds`, per call; `cold`: with the CPU's
    caches flushed before each call, as they are on an answer's path (where the receipt
    measured twice its hot-loop time)."""
    key = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "bench")
    params = {"tool": "llm_complete", "messages": BODY["messages"], "max_tokens": 64}
    row = UsageRow(
        ts=time.time(),
        principal="bench",
        tool="llm_complete",
        provider="fake",
        model="bench-model",
        input_tokens=9,
        output_tokens=5,
        cost_usd=0.000123,
        latency_ms=1.5,
        outcome="ok",
        fallback_path="[]",
        request_digest="0" * 64,
    )
    digests, signatures = [], []
    for _ in range(rounds):
        if cold:
            _flush_caches()
        started = time.perf_counter()
        receipts.request_digest(params)
        middle = time.perf_counter()
        receipts.sign_row(key, row)
        signatures.append(time.perf_counter() - middle)
        digests.append(middle - started)
        key.make_nonce()  # as the router does, once the answer is written
    return statistics.median(digests) * 1e6, statistics.median(signatures) * 1e6


async def run(calls: int, rounds: int, blocks: int, wrk_seconds: int, pin: bool) -> None:
    print(f"SealGate receipts benchmark, {calls} calls per row, {rounds} off/on pairs")
    print(machine_line())
    engine = SigningKey(Ed25519PrivateKey.generate(), "sealgate/audit", "bench").engine
    digest_us, sign_us = in_process()
    print(
        f"\nIn process, per call: request digest {digest_us:.1f} us, receipt {sign_us:.1f} us"
        f" (signed by {engine})"
    )
    digest_us, sign_us = in_process(500, cold=True)
    print(f"  caches cold: request digest {digest_us:.1f} us, receipt {sign_us:.1f} us")
    added: dict[int, list[float]] = {1: [], 16: []}
    print("\n/v1/chat/completions through the whole stack (added p50: on against its pair's off):")
    with FakeProcess() as fake:
        for round_ in range(rounds):
            # alternated, and each other pair in the other order: the machine drifts, and
            # the second stack of a pair measured slower than the first whatever it ran
            if round_ % 2 == 0:
                off_rows = await through_v1(fake.base, False, calls)
                on_rows = await through_v1(fake.base, True, calls)
            else:
                on_rows = await through_v1(fake.base, True, calls)
                off_rows = await through_v1(fake.base, False, calls)
            off = {row.concurrency: row for row in off_rows}
            print_rows([*off_rows, *on_rows], off)
            for row in on_rows:
                added[row.concurrency].append(row.p50_ms - off[row.concurrency].p50_ms)
        cpus = sorted(os.sched_getaffinity(0))
        stack_cpus = set(cpus[1:]) if pin and len(cpus) > 1 else None
        if stack_cpus is not None:  # the fake, wrk and this client on the first CPU
            os.sched_setaffinity(0, {cpus[0]})
            os.sched_setaffinity(fake.process.pid, {cpus[0]})
        try:
            switched, cpu = await switched_in_one_stack(
                fake.base, calls, blocks, wrk_seconds, stack_cpus
            )
        finally:
            os.sched_setaffinity(0, set(cpus))
        if stack_cpus is not None:
            where = f"the fake, wrk and the client on CPU {cpus[0]}, SealGate on the others"
            print(f"  (one stack pinned: {where})")
    for concurrency, values in added.items():
        if not values:
            continue
        pairs = ", ".join(f"{value * 1e3:+.0f}" for value in values)
        print(
            f"  receipts' added p50 at {concurrency}: median {statistics.median(values) * 1e3:+.0f}"
            f" us over {len(values)} pairs ({pairs} us)"
            + ("; target <= 100 us" if concurrency == 1 else "")
        )
    for concurrency, values in switched.items():
        pairs = ", ".join(f"{value:+.0f}" for value in values)
        print(
            f"  in one stack, switched by a reload: added p50 at {concurrency} median"
            f" {statistics.median(values):+.0f} us over {len(values)} pairs of blocks"
            f" ({pairs} us)" + ("; target <= 100 us" if concurrency == 1 else "")
        )
    for name in ("guardian", "sandbox"):
        without, with_ = statistics.median(cpu[name, False]), statistics.median(cpu[name, True])
        print(
            f"  in one stack at 1, the {name}'s CPU per call (median of the blocks):"
            f" {without:.0f} us off, {with_:.0f} us on ({with_ - without:+.0f} us)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per row (max 20000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="off/on pairs of fresh stacks (0 to 10)"
    )
    parser.add_argument(
        "--blocks", type=int, default=32, help="blocks at 1 switched in one stack (max 96)"
    )
    parser.add_argument(
        "--wrk", type=int, default=0, help="seconds of wrk per block in one stack (max 10)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="one stack: the fake and the client on one CPU"
    )
    args = parser.parse_args()
    calls = max(64, min(args.calls, 20_000))
    rounds, blocks = max(0, min(args.rounds, 10)), max(4, min(args.blocks, 96))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(calls, rounds, blocks, max(0, min(args.wrk, 10)), args.pin))


if __name__ == "__main__":
    main()
