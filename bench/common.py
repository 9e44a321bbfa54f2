"""Shared benchmark plumbing: a fake provider process, timing, and printing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:

    return (
        f"python {platform.python_version()}, uvloop {version('uvloop')},"
        f" CPU: {cpu_model()} x{len(os.sched_getaffinity(0))},"
        f" idle states: {idle_driver()}"
    )


def idle_driver() -> str:
    """The kernel's cpuidle driver (a VM's `haltpoll`, `intel_idle`, ...): how deep an idle
    core sleeps decides what waking it costs, which every hop at concurrency 1 pays."""
    try:
        return Path("/sys/devices/system/cpu/cpuidle/current_driver").read_text().strip()
    except OSError:
        return "unknown"


@contextlib.contextmanager
def cores_awake() -> Iterator[bool]:
    """Hold every core out of its idle states while inside, as tuned's latency-performance
    profile does (a PM QoS request of 0 us on /dev/cpu_dma_latency, dropped when the file is
    closed); yields False, changing nothing, where that needs root it does not have."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError:
        yield False
        return
    try:
        os.write(fd, struct.pack("i", 0))
        yield True
    finally:
        os.close(fd)


@dataclass
class Row:
    label: str
    concurrency: int
    p50_ms: float
    p99_ms: float
    per_s: float


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def measure(
    label: str,
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    calls: int,
    max_seconds: float = 20.0,
) -> Row:
    """Run `calls` calls over `concurrency` workers (bounded by `max_seconds`)."""
    latencies: list[float] = []
    deadline = time.monotonic() + max_seconds
    per_worker = max(1, calls // concurrency)

    async def worker() -> None:
        for _ in range(per_worker):
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Row(
        label,
        concurrency,
        percentile(latencies, 0.5) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        len(latencies) / elapsed,
    )


def print_rows(rows: list[Row], floor: dict[int, Row] | None = None) -> None:
    print(f"  {'what':<44} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'req/s':>8}")
    for row in rows:
        added = ""
        if floor and row.concurrency in floor and floor[row.concurrency] is not row:
            added = f"{row.p50_ms - floor[row.concurrency].p50_ms:+.2f}"
        print(
            f"  {row.label:<44} {row.concurrency:>3} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f}"
            f" {added:>10} {row.per_s:>8,.0f}"
        )


class FakeProcess:
    """bench/fake_provider.py in a process of its own, so it does not share our GIL."""

    script = "fake_provider.py"

    def __init__(self, *args: str) -> None:
        self.args = args

    def __enter__(self) -> FakeProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / self.script), *self.args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"
        self.base = f"{self.url}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


class LimitProcess(FakeProcess):
    """bench/limit_servers.py: the bare hypercorn app, or one fastmcp process relaying."""

    script = "limit_servers.py"


def wrk(
    url: str, concurrency: int, seconds: int, body: dict[str, object], headers: dict[str, str]
) -> Row | None:
    """p50/p99 and requests/s from wrk, or None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)

    def millis(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([0-9.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"    (wrk saw {errors.group(1)} non-2xx responses on {url})")
    return Row(
        url, concurrency, millis("50%"), millis("99%"), float(rate.group(1)) if rate else 0.0
    )


def cpu_ns(pid: int) -> int:
    """Nanoseconds `pid` has run on a CPU so far, all its threads (the scheduler's own
    count, /proc/PID/task/TID/schedstat: finer than the 10 ms ticks of /proc/PID/stat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(task.read_text().split()[0])
    return total
