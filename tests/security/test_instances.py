"""Instances on one host never share service users: every guardian accepts its sandbox by
uid, so a second instance running as the same pair could reach the first one's guardian.

The lock directory is per test (`HUB_LOCK_DIR`); the default, /run/sealgate, is host-wide.
In one-uid mode there is no service-user pair to share: instances under one uid are apart
only when each has a uid (a container) of its own, as docs/SECURITY.md's run-mode table says.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import Stack, two_uid_possible

REASON = two_uid_possible()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
EX_CONFIG = 78


def _refused(stack: Stack) -> str:
    assert stack.process is not None
    try:
        code = stack.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"a second instance started:\n{stack.logs()}") from None
    assert code == EX_CONFIG, stack.logs()
    return stack.logs()


def test_a_second_instance_with_the_same_users_is_refused(
    stack_factory: Callable[..., Stack], scratch: Callable[[str], Path]
) -> None:
    locks = {"HUB_LOCK_DIR": str(scratch("sealgate-locks-"))}
    first = stack_factory(env=locks, single_uid=False)
    second = stack_factory(env=locks, single_uid=False, wait=False)
    logs = _refused(second)
    assert "another SealGate instance" in logs and "already runs as hub-guardian" in logs
    assert "HUB_GUARDIAN_USER=" in logs and "HUB_SANDBOX_USER=" in logs
    assert f"runtime {first.runtime}" in logs  # which instance holds the pair
    assert httpx.get(f"{first.url}/healthz").status_code == 200  # the first is untouched

    # sharing the sandbox's user alone is what matters most, and is refused too
    shared_sandbox = stack_factory(
        env={**locks, "HUB_GUARDIAN_USER": "hub-test2-guardian"}, single_uid=False, wait=False
    )
    assert "already runs as hub-sandbox" in _refused(shared_sandbox)

    # another pair runs beside it
    other = stack_factory(
        env={
            **locks,
            "HUB_GUARDIAN_USER": "hub-test2-guardian",
            "HUB_SANDBOX_USER": "hub-test2-sandbox",
        },
        single_uid=False,
    )
    assert httpx.get(f"{other.url}/healthz").status_code == 200

    # once the first has stopped, its pair is free again
    assert first.stop() == 0
    again = stack_factory(env=locks, single_uid=False)
    assert httpx.get(f"{again.url}/healthz").status_code == 200
