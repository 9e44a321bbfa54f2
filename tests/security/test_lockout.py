"""The login lockout holds against parallel guesses.

The attack: send 15 wrong passwords at once, then the right one, before any of the wrong ones
has finished. The lockout used to be counted after the (slow) password check, so every guess
saw a clean count and the right password still got a 200. Each attempt is now counted
atomically before its password is checked: the sixteenth is refused whatever it carries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from tests.helpers import Stack
from tests.security.stackdb import BACKENDS, Backend, ctl, make_backend

PASSWORD = "the right password"
MAX_FAILED_LOGINS = 5  # [HUB_LIMITS] max_failed_logins, by default


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


def _attempts_counted(stack: Stack, backend: Backend) -> int:
    rows = backend.rows(stack, "SELECT failed_logins FROM {s}users WHERE name = 'ada'")
    return int(rows[0]["failed_logins"]) if rows else 0


async def _login(client: httpx.AsyncClient, password: str) -> int:
    answer = await client.post("/auth/login", json={"username": "ada", "password": password})
    return answer.status_code


async def test_parallel_guesses_cannot_outrun_the_lockout(
    stack_factory: Callable[..., Stack], backend: Backend
) -> None:
    stack = stack_factory(env=backend.env)
    ctl(stack, "users", "add", "ada", "--role", "user", stdin=f"{PASSWORD}\n")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        guesses = [asyncio.create_task(_login(client, f"guess {n}")) for n in range(15)]
        # The guesses are in the guardian, counted and hashing. (A fixed sleep raced a loaded
        # machine: the right password could arrive first, and a first attempt may succeed.)
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(_attempts_counted, stack, backend) < MAX_FAILED_LOGINS:
            assert time.monotonic() < deadline, "the guesses never reached the guardian"
            await asyncio.sleep(0.01)
        right = await _login(client, PASSWORD)
        wrong = await asyncio.gather(*guesses)
    assert right == 401
    assert sorted(set(wrong)) == [401]
    # the account is locked now, for the right password too
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        assert await _login(client, PASSWORD) == 401
    entries = backend.rows(stack, "SELECT outcome, detail FROM {s}audit WHERE action = 'login'")
    assert len(entries) == 17
    assert all(entry["outcome"] == "refused" for entry in entries)
    assert sum("account locked" in entry["detail"] for entry in entries) >= 11
