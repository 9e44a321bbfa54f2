from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import GuardianProcess, Stack


@pytest.fixture
def stack_factory() -> Iterator[Callable[..., Stack]]:
    """Start real stacks; each is stopped and removed after the test."""
    stacks: list[Stack] = []

    def start(**kwargs: object) -> Stack:
        wait = bool(kwargs.pop("wait", True))
        stack = Stack(**kwargs)  # type: ignore[arg-type]
        stacks.append(stack)
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
