"""Time to first chunk of a streamed `/v1/chat/completions`, this checkout against another,
in interleaved pairs.

    .venv/bin/python bench/first_chunk.py --against DIR [--rounds 6] [--calls 400] [--concurrency 1]

Starts the fake provider once, then one whole stack from this checkout and one from `DIR`
(another checkout of SealGate, e.g. `git worktree add` or `git archive | tar -x` of an older
commit), and measures bench/vs_litellm.py's time-to-first-chunk row on each, alternating the
order pair by pair (ABBA), with the fake's own streaming floor in every round. Prints each
row, each pair's difference and the medians: on a shared machine only the pairs compare.
Without `--against` it measures this checkout alone. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess, machine_line
from bench.vs_litellm import first_chunk, stack_config
from tests.helpers import Stack

ROOT = Path(__file__).resolve().parent.parent


class StackAt(Stack):
    """The whole stack, run from the checkout at `root` (its supervisor and children)."""

    def __init__(self, root: Path, config_text: str) -> None:
        super().__init__(config_text=config_text, single_uid=True)
        self.root = root

    def start(self, wait: bool = True) -> StackAt:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.python, "-I", str(self.root / "supervisor.py")],
                env=self.env,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_healthy()
        return self


@contextlib.contextmanager
def running(stacks: dict[str, StackAt]) -> Iterator[None]:
    """The stacks started, then stopped and cleaned up however the block ends."""
    for stack in stacks.values():
        stack.start()
    try:
        yield
    finally:
        for stack in stacks.values():
            stack.stop()
            stack.cleanup()


async def run(against: Path | None, rounds: int, calls: int, concurrency: int) -> None:
    print("time to first chunk, /v1/chat/completions streamed, fake provider on loopback")
    print(machine_line())
    with FakeProcess() as fake:
        roots = {"this": ROOT, **({"other": against} if against is not None else {})}
        stacks = {name: StackAt(root, stack_config(fake.base)) for name, root in roots.items()}
        with running(stacks):
            floor_url = f"{fake.base}/chat/completions"
            for name, stack in stacks.items():  # warm both: connections, caches
                await first_chunk(f"{stack.url}/v1/chat/completions", concurrency, 100, name)
            p50: dict[str, list[float]] = {name: [] for name in stacks}
            floors: list[float] = []
            for index in range(rounds):
                order = list(stacks) if index % 2 == 0 else list(reversed(stacks))
                floor = await first_chunk(floor_url, concurrency, calls, "floor")
                floors.append(floor.p50_ms)
                line = [f"round {index + 1}: floor {floor.p50_ms:.3f}"]
                for name in order:
                    url = f"{stacks[name].url}/v1/chat/completions"
                    row = await first_chunk(url, concurrency, calls, name)
                    p50[name].append(row.p50_ms)
                    line.append(f"{name} {row.p50_ms:.3f} (p99 {row.p99_ms:.2f})")
                print("  " + ", ".join(line) + " ms")
            print(f"  floor p50 median {statistics.median(floors):.3f} ms")
            for name, values in p50.items():
                added = statistics.median(values) - statistics.median(floors)
                print(
                    f"  {name} p50 median {statistics.median(values):.3f} ms"
                    f" (over the floor: {added:+.3f} ms)"
                )
            if "other" in p50:
                pairs = [a - b for a, b in zip(p50["this"], p50["other"], strict=True)]
                wins = sum(d < 0 for d in pairs)
                print(
                    "  this - other per pair: "
                    + ", ".join(f"{d:+.3f}" for d in pairs)
                    + f" ms; median {statistics.median(pairs):+.3f} ms;"
                    f" this faster in {wins} of {len(pairs)}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another SealGate checkout")
    parser.add_argument("--rounds", type=int, default=6, help="pairs (max 40)")
    parser.add_argument("--calls", type=int, default=400, help="streams per row (max 5000)")
    parser.add_argument("--concurrency", type=int, default=1, help="streams at once (max 64)")
    args = parser.parse_args()
    against = args.against.resolve() if args.against is not None else None
    if against is not None and not (against / "supervisor.py").is_file():
        sys.exit(f"first_chunk: {against} is not a SealGate checkout (no supervisor.py)")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            run(
                against,
                max(1, min(args.rounds, 40)),
                max(1, min(args.calls, 5000)),
                max(1, min(args.concurrency, 64)),
            )
        )


if __name__ == "__main__":
    main()
