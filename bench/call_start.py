"""What recording a call's start adds to every call, on SQLite and PostgreSQL side by side.

    make bench        (or: .venv/bin/python bench/call_start.py [--calls N])

Every sealed call writes its start (a reservation row: the call's maximum) before it leaves,
so that a call in flight survives a SIGKILL of the guardian; the write is awaited on the
call's path, so its latency is what each call gains. Its deletion rides in the ledger's
batch with the usage row, off the call's path; its cost per row is shown too. SQLite is a
temp file with the guardian's own settings (WAL, synchronous=NORMAL); PostgreSQL a throwaway
cluster of the test suite's on 127.0.0.1 (loopback only) with fsync on, as in production.
Bounded in count and time; touches only temp dirs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine_line, percentile
from guardian.limits import Limits
from guardian.storage import Storage, open_storage
from guardian.storage.base import LedgerEntry, Reservation, UsageRow
from tests.pg import PostgresServer, unavailable_reason

BATCH = 100


class DurablePostgres(PostgresServer):
    """The test suite's throwaway cluster, with fsync on (its tests turn it off)."""

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres"
            )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
        )
        return self


def _row(held: Reservation) -> LedgerEntry:
    usage = UsageRow(
        ts=time.time(),
        principal=held.principal,
        tool="llm_complete",
        provider="p",
        model="m",
        input_tokens=10,
        output_tokens=6,
        cost_usd=0.0001,
        latency_ms=1.0,
        outcome="ok",
        fallback_path="[]",
    )
    return LedgerEntry(usage=usage, reservation=held)


async def measure(storage: Storage, calls: int, max_seconds: float) -> dict[str, float]:
    """p50/p99 of the awaited start (a principal without a budget), and the ledger batch's
    time per row with the reservation deleted against without one."""
    limits = Limits(storage, "bench")
    starts: list[float] = []
    held: list[Reservation] = []
    deadline = time.monotonic() + max_seconds
    for _ in range(calls):
        if time.monotonic() > deadline:
            break
        began = time.perf_counter()
        one = await limits.reserve(
            f"u{uuid.uuid4().hex[:6]}",
            None,
            0.01,
            tool="llm_complete",
            provider="p",
            model="m",
            input_tokens=100,
            output_tokens=50,
        )
        starts.append(time.perf_counter() - began)
        held.append(one)

    # batches with and without starts to delete, interleaved so that drift cancels out
    spent = {True: 0.0, False: 0.0}
    for index in range(0, len(held), BATCH):
        for with_start in (True, False):
            batch = [
                LedgerEntry(usage=_row(h).usage, reservation=h if with_start else None)
                for h in held[index : index + BATCH]
            ]
            began = time.perf_counter()
            await storage.write_ledger(batch)
            spent[with_start] += time.perf_counter() - began
    rows = max(1, len(held))
    return {
        "calls": len(starts),
        "p50_us": percentile(starts, 0.5) * 1e6,
        "p99_us": percentile(starts, 0.99) * 1e6,
        "ledger_added_us": (spent[True] - spent[False]) / rows * 1e6,
    }


async def run(calls: int, max_seconds: float) -> None:
    print(f"recording a call's start (awaited before the call leaves), {calls} calls per row")
    print(machine_line())
    print(
        f"  {'backend':<42} {'calls':>6} {'added p50 us':>13} {'p99 us':>8} {'ledger +us/row':>15}"
    )
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as scratch:
        sqlite = await open_storage(None, Path(scratch) / "guardian.db")
        try:
            rows.append(
                ("SQLite (WAL, synchronous=NORMAL)", await measure(sqlite, calls, max_seconds))
            )
        finally:
            await sqlite.close()
    reason = unavailable_reason()
    if reason is None:
        server = DurablePostgres().start()
        try:
            dsn = server.create_database("bench")
            postgres = await open_storage(dsn, Path("/nonexistent"))
            try:
                label = "PostgreSQL (127.0.0.1, fsync on)"
                rows.append((label, await measure(postgres, calls, max_seconds)))
            finally:
                await postgres.close()
        finally:
            server.cleanup()
    for label, row in rows:
        print(
            f"  {label:<42} {row['calls']:>6.0f} {row['p50_us']:>13.1f} {row['p99_us']:>8.1f}"
            f" {row['ledger_added_us']:>15.1f}"
        )
    if reason is not None:
        print(f"  PostgreSQL skipped: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000, help="calls per row (max 50000)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per backend")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(max(100, min(args.calls, 50_000)), args.max_seconds))


if __name__ == "__main__":
    main()
