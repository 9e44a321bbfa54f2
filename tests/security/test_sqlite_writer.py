"""SQLite has one serialized writer: no request fails and no audit row is lost under load.

The attack (or just a busy morning): 20 parallel logins, plus tokens in use, against the
default SQLite store. Statements of concurrent requests used to interleave on the shared
connection, so commits failed with "cannot commit transaction - SQL statements in progress":
seven 500s, and those audit rows were gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.helpers import EXAMPLE_CONFIG, Stack
from tests.security.stackdb import Backend, ctl

USERS = 20


async def test_parallel_logins_all_answer_and_all_are_audited(
    stack_factory: Callable[..., Stack],
) -> None:
    config = EXAMPLE_CONFIG.read_text().replace(
        '# login_attempts_per_min = "20"', 'login_attempts_per_min = "1000"'
    )
    stack = stack_factory(config_text=config)
    for index in range(USERS):
        ctl(stack, "users", "add", f"user{index}", stdin=f"password number {index}\n")
    token = ctl(stack, "tokens", "issue", "--user", "user0")
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:

        async def login(index: int, password: str) -> int:
            body = {"username": f"user{index}", "password": password}
            return (await client.post("/auth/login", json=body)).status_code

        async def use_token() -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return (await client.get("/v1/models", headers=headers)).status_code

        for _ in range(2):
            answers = await asyncio.gather(
                *(login(i, f"password number {i}") for i in range(USERS)),
                *(login(i, "a wrong password") for i in range(USERS)),
                *(use_token() for _ in range(USERS)),
            )
            assert answers == [200] * USERS + [401] * USERS + [200] * USERS
    audit = Backend("sqlite").rows(
        stack, "SELECT outcome, COUNT(*) AS n FROM {s}audit WHERE action = 'login' GROUP BY outcome"
    )
    assert {row["outcome"]: row["n"] for row in audit} == {"ok": 2 * USERS, "refused": 2 * USERS}
    assert "SQL statements in progress" not in stack.logs()
    assert "Traceback" not in stack.logs()
