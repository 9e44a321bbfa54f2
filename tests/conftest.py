from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WORKDIRS, GuardianProcess, Stack, make_workdir
from tests.pg import PostgresServer, unavailable_reason

#: The layers (unit / e2e / slow), their timeouts and their time per run.
pytest_plugins = ("tests.layers",)


#: How much of each stack's log a failed test shows (its end: where it failed).
FAILED_LOG_TAIL = 6000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so its fixtures can tell it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def stack_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Start real stacks; each is stopped and removed after the test, and a failed test
    shows the end of each one's log (a flake under load is then readable from CI's output)."""
    stacks: list[Stack] = []

    def start(**kwargs: object) -> Stack:
        """`before_start(stack)` runs after the stack's directory exists and before the
        supervisor starts (to place files the supervisor checks)."""
        wait = bool(kwargs.pop("wait", True))
        before_start = kwargs.pop("before_start", None)
        stack = Stack(**kwargs)  # type: ignore[arg-type]
        stacks.append(stack)
        if callable(before_start):
            before_start(stack)
        return stack.start(wait=wait)

    yield start
    called = getattr(request.node, "report_call", None)
    if called is not None and called.failed:
        for number, stack in enumerate(stacks, 1):
            print(f"--- stack {number} of {len(stacks)}: the end of its log ---")
            print(stack.logs()[-FAILED_LOG_TAIL:])
    for stack in stacks:
        stack.cleanup()


@pytest.fixture
def guardian() -> Iterator[GuardianProcess]:
    process = GuardianProcess().start()
    yield process
    process.stop()


@pytest.fixture
def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates service users and drops privileges (CI runs as root)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; each test makes its own database."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.fail(f"PostgreSQL tests cannot run: {reason}")
    server = PostgresServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_database(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database; returns its DSN."""
    name = "t_" + uuid.uuid4().hex[:12]
    return postgres.create_database(name)


@pytest.fixture
def scratch() -> Iterator[Callable[[str], Path]]:
    """`scratch(prefix)`: a work directory under /tmp that every user can traverse, removed
    after the test."""
    made: list[Path] = []

    def make(prefix: str) -> Path:
        path = make_workdir(prefix)
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


_LEFT_BY_WORKERS: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a passing session that left work directories in /tmp (a pytest-xdist worker
    hands its list to the controller, whose exit status is the run's)."""
    left = [str(p) for p in WORKDIRS if p.exists()] + _LEFT_BY_WORKERS
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["sealgate_left_dirs"] = left
        return
    if left and exitstatus == 0:
        print(f"\ntests left these directories behind: {', '.join(left)}")
        session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    del error
    _LEFT_BY_WORKERS.extend(getattr(node, "workeroutput", {}).get("sealgate_left_dirs", []))
