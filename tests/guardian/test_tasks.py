"""Supervised background tasks and the bounded usage ledger, in-process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from guardian.ledger import UsageLedger
from guardian.storage import open_storage
from guardian.storage.base import LedgerEntry, StorageError, UsageRow
from guardian.tasks import TaskSet


async def test_a_failing_task_is_logged_with_its_traceback_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ValueError(f"bug number {runs}")
        done.set()
        await asyncio.sleep(3600)

    tasks = TaskSet(backoff_initial_s=0.01)
    with caplog.at_level(logging.ERROR, logger="sealgate.guardian.tasks"):
        tasks.start("flaky", flaky)
        await asyncio.wait_for(done.wait(), 5)
    stats = tasks.stats()["flaky"]
    assert stats == {"running": True, "restarts": 2, "last_error": "ValueError: bug number 2"}
    failures = [r for r in caplog.records if "background task flaky failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
    await tasks.close()
    assert tasks.stats()["flaky"]["running"] is False


async def test_backoff_grows_between_restarts() -> None:
    starts: list[float] = []

    async def always_fails() -> None:
        starts.append(time.monotonic())
        raise RuntimeError("no")

    tasks = TaskSet(backoff_initial_s=0.05, backoff_max_s=1)
    logging.getLogger("sealgate.guardian.tasks").disabled = True
    try:
        tasks.start("bad", always_fails)
        await asyncio.sleep(0.8)
    finally:
        await tasks.close()
        logging.getLogger("sealgate.guardian.tasks").disabled = False
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 3
    for attempt, gap in enumerate(gaps[:3]):  # at least 0.05, 0.1, 0.2 s (never shorter)
        assert gap >= 0.05 * 2**attempt * 0.95


async def test_close_cancels_and_awaits_every_task() -> None:
    cleaned = asyncio.Event()

    async def holds() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned.set()

    tasks = TaskSet()
    tasks.start("holds", holds)
    await asyncio.sleep(0)
    await tasks.close()
    assert cleaned.is_set()


def _row() -> UsageRow:
    return UsageRow(
        ts=time.time(),
        principal="p",
        tool="t",
        provider="x",
        model="m",
        input_tokens=1,
        output_tokens=1,
        cost_usd=None,
        latency_ms=1.0,
        outcome="ok",
        fallback_path="[]",
    )


class _DownStorage:
    """A database that is away."""

    async def write_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        raise StorageError("postgresql: connection lost")


async def test_the_ledger_queue_is_bounded_and_counts_what_it_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = UsageLedger(_DownStorage(), capacity=3)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="sealgate.guardian.ledger"):
        for _ in range(5):
            ledger.record(_row())
        await ledger.flush()  # fails: the rows wait for the next try
    assert ledger.stats() == {"pending": 3, "capacity": 3, "dropped": 2, "refused": 0}
    full = [r for r in caplog.records if "ledger full" in r.getMessage()]
    assert len(full) == 1


async def test_rows_waiting_for_the_database_are_written_once_it_is_back(
    tmp_path: Path,
) -> None:
    storage = await open_storage(None, tmp_path / "g.db")
    try:
        ledger = UsageLedger(_DownStorage(), capacity=10)  # type: ignore[arg-type]
        for _ in range(4):
            ledger.record(_row())
        await ledger.flush()
        assert ledger.pending == 4
        ledger.storage = storage
        await ledger.flush()
        assert ledger.pending == 0
        assert len(await storage.fetch("SELECT id FROM usage")) == 4
    finally:
        await storage.close()
