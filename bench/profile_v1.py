"""Where a `/v1/chat/completions` request spends its time, per process, from a sampling profile.

    .venv/bin/python bench/profile_v1.py [--seconds 10] [--concurrency 16] [--py-spy PATH]

Starts the whole stack against the fake provider (as bench/vs_litellm.py does), drives it with
wrk, and records the sandbox and the guardian with py-spy (not a project dependency: give its
path, or have it on PATH; without it the script says so and stops). Prints, per process, the
share of busy samples by layer (HTTP server, middleware, RPC, outbound, database, SealGate's
own code) and the top frames by own samples. Threads blocked on a queue (aiosqlite's worker,
the executor's) are not counted as busy. Bounded in time; loopback only.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess
from bench.vs_litellm import BODY, stack_config
from tests.helpers import Stack

#: Frames where a thread waits on a queue in C, which py-spy reports as busy.
WAITING = (
    "_connection_worker_thread (aiosqlite/core.py:59)",
    "_worker (concurrent/futures/thread.py:81)",
)
#: Which layer a frame belongs to, by the first matching piece of its "name (file:line)".
LAYERS = [
    ("HTTP server (hypercorn, h11)", ("(hypercorn/", "(h11/")),
    (
        "middleware (Starlette's and the sandbox's: guard, auth, OAuth, metrics, errors)",
        (
            "(starlette/middleware",
            "(sandbox/middleware",
            "(sandbox/auth",
            "(sandbox/oauth",
            "(sandbox/request_guard",
            "(sandbox/metrics",
            "(sandbox/tracing_spans",
            "(sandbox/openai_errors",
            "(prometheus_client/",
        ),
    ),
    ("Starlette (routing, Request, Response)", ("(starlette/",)),
    ("RPC (protocol/ client, channel, framing; msgpack, msgspec)", ("(protocol/", "msgpack")),
    ("outbound (aiohttp client)", ("(aiohttp/",)),
    (
        "database (aiosqlite, sqlite3, asyncpg, guardian/storage)",
        ("aiosqlite", "sqlite3", "asyncpg", "(guardian/storage"),
    ),
    ("receipts and the audit log (guardian/tlog)", ("(guardian/tlog",)),
]
OWN = ("(sandbox/", "(guardian/")
#: Samples whose innermost frame is the event loop's own run call: uvloop's C code, that is
#: the socket system calls (send, recv, epoll) and the callbacks' dispatch.
LOOP = "Runner.run (asyncio/runners.py"


def layer_of(stack: list[str]) -> str:
    """The innermost frame that names a layer decides (a leaf in json.dumps under a route
    counts for the route's own code)."""
    if stack[-1].startswith(LOOP):
        return "event loop and socket I/O (uvloop, C)"
    for frame in reversed(stack):
        for name, marks in LAYERS:
            if any(mark in frame for mark in marks):
                return name
        if any(mark in frame for mark in OWN):
            return "SealGate's own code (sandbox/, guardian/: routes, dialects, calls)"
    return "other (asyncio, stdlib, Starlette routing)"


def summarize(path: Path, title: str, top: int) -> None:
    layers: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        if frames[-1].startswith(WAITING):
            continue  # a worker thread blocked on its queue: idle, whatever py-spy thinks
        total += count
        layers[layer_of(frames)] += count
        own[frames[-1]] += count
    print(f"\n{title}: {total} samples")
    for name, count in layers.most_common():
        print(f"  {100 * count / max(total, 1):5.1f}%  {name}")
    print("  top frames by own samples:")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / max(total, 1):5.1f}%  {frame[:150]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the stack")
    parser.add_argument("--summarize", default="", help="only summarize a run's raw stacks dir")
    args = parser.parse_args()
    if args.summarize:
        for name in ("sandbox", "guardian"):
            summarize(Path(args.summarize) / f"{name}.txt", name, args.top)
        return
    seconds = max(1, min(args.seconds, 60))
    if not args.py_spy or not Path(args.py_spy).exists():
        sys.exit("profile_v1: py-spy not found (pip install py-spy outside the project venv)")
    if shutil.which("wrk") is None:
        sys.exit("profile_v1: wrk not found")
    env = dict(item.split("=", 1) for item in args.env)
    out = Path(tempfile.mkdtemp(prefix="sealgate-profile-"))
    script = out / "body.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {__import__('json').dumps(__import__('json').dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    with FakeProcess() as fake:
        stack = Stack(config_text=stack_config(fake.base), single_uid=True, env=env)
        stack.start()
        try:
            url = f"{stack.url}/v1/chat/completions"
            subprocess.run(
                ["wrk", "-t1", f"-c{args.concurrency}", "-d2s", "-s", str(script), url],
                capture_output=True,
                check=True,
                timeout=60,
            )  # warm-up
            spies = {
                name: subprocess.Popen(
                    [
                        args.py_spy,
                        "record",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--duration",
                        str(seconds),
                        "--pid",
                        str(stack.pid_of(name)),
                        "--output",
                        str(out / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for name in ("sandbox", "guardian")
            }
            time.sleep(0.5)
            report = subprocess.run(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.concurrency}",
                    f"-d{seconds}s",
                    "--latency",
                    "-s",
                    str(script),
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=seconds + 60,
            ).stdout
            for spy in spies.values():
                spy.wait(seconds + 60)
            print(report)
            for name in spies:
                summarize(out / f"{name}.txt", name, args.top)
            print(f"\nraw stacks: {out}")
        finally:
            stack.stop()
            stack.cleanup()


if __name__ == "__main__":
    main()
