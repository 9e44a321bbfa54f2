from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import GuardianProcess, Stack
from tests.pg import PostgresServer, unavailable_reason


@pytest.fixture
def stack_factory() -> Iterator[Callable[..., Stack]]:
    """Start real stacks; each is stopped and removed after the test."""
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
