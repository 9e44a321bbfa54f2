"""`/v1/chat/completions` of this checkout against another, in interleaved pairs of wrk rows.

    .venv/bin/python bench/against.py --against DIR [--rounds 8] [--seconds 3] [-c 1 -c 16]

Starts the fake provider once and one whole stack from each checkout (`DIR`: another checkout
of SealGate, e.g. a `git worktree add` of an older commit), then measures bench/vs_litellm.py's
`/v1` row with wrk on each, alternating the order pair by pair (ABBA) at each concurrency.
Prints each pair's p50 and req/s, their differences and the medians: on a shared machine only
the pairs compare. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess, Row, machine_line, wrk
from bench.first_chunk import ROOT, StackAt, running
from bench.vs_litellm import BODY, stack_config


async def row_of(url: str, concurrency: int, seconds: int) -> Row:
    row = await asyncio.to_thread(wrk, url, concurrency, seconds, BODY, {})
    if row is None:
        raise SystemExit("against: wrk is not installed (make bench installs it)")
    return row


async def run(against: Path, rounds: int, seconds: int, levels: list[int]) -> None:
    print("/v1/chat/completions, this checkout against another, fake provider on loopback")
    print(machine_line())
    with FakeProcess() as fake:
        roots = {"this": ROOT, "other": against}
        stacks = {name: StackAt(root, stack_config(fake.base)) for name, root in roots.items()}
        with running(stacks):
            urls = {name: f"{stack.url}/v1/chat/completions" for name, stack in stacks.items()}
            for url in urls.values():  # warm both: connections, caches
                await row_of(url, 16, 1)
            for concurrency in levels:
                rows: dict[str, list[Row]] = {name: [] for name in stacks}
                for index in range(rounds):
                    order = list(stacks) if index % 2 == 0 else list(reversed(stacks))
                    for name in order:
                        rows[name].append(await row_of(urls[name], concurrency, seconds))
                    this, other = rows["this"][-1], rows["other"][-1]
                    print(
                        f"  c={concurrency} pair {index + 1}: this {this.p50_ms:.3f} ms"
                        f" (p99 {this.p99_ms:.2f}) {this.per_s:,.0f}/s, other"
                        f" {other.p50_ms:.3f} ms (p99 {other.p99_ms:.2f}) {other.per_s:,.0f}/s"
                    )
                pairs = list(zip(rows["this"], rows["other"], strict=True))
                p50 = [a.p50_ms - b.p50_ms for a, b in pairs]
                rate = [a.per_s / b.per_s - 1 for a, b in pairs]
                p99 = [a.p99_ms - b.p99_ms for a, b in pairs]
                added = statistics.median(p50) * 1e3
                print(
                    f"  c={concurrency}: this - other p50 median {added:+.0f}"
                    f" us (lower in {sum(d < 0 for d in p50)} of {len(p50)}), req/s median"
                    f" {statistics.median(rate):+.1%} (higher in {sum(r > 0 for r in rate)}"
                    f" of {len(rate)}), p99 median {statistics.median(p99):+.2f} ms (lower in"
                    f" {sum(d < 0 for d in p99)} of {len(p99)})"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="another SealGate checkout")
    parser.add_argument("--rounds", type=int, default=8, help="pairs per concurrency (max 40)")
    parser.add_argument("--seconds", type=int, default=3, help="per wrk row (max 30)")
    parser.add_argument(
        "-c", dest="levels", type=int, action="append", help="concurrency (default 1 and 16)"
    )
    args = parser.parse_args()
    against = args.against.resolve()
    if not (against / "supervisor.py").is_file():
        sys.exit(f"against: {against} is not a SealGate checkout (no supervisor.py)")
    levels = [max(1, min(c, 256)) for c in (args.levels or [1, 16])]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            run(against, max(1, min(args.rounds, 40)), max(1, min(args.seconds, 30)), levels)
        )


if __name__ == "__main__":
    main()
