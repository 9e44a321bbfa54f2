"""Logins against a hostile caller: a locked account answers exactly like a user name that
does not exist, and passwords are hashed at the current PBKDF2 cost (old hashes are
upgraded at the next good login), on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from passlib.hash import pbkdf2_sha256

from tests.helpers import Stack, run_ctl
from tests.pg import PostgresServer

PASSWORD = "correct horse battery"


def add_user(stack: Stack, name: str) -> None:
    added = run_ctl(stack.runtime / "guardian" / "admin.sock", "users", "add", name, stdin=PASSWORD)
    assert added.returncode == 0, added.stderr


def login(stack: Stack, name: str, password: str) -> tuple[int, Any]:
    response = httpx.post(
        f"{stack.url}/auth/login", json={"username": name, "password": password}, timeout=30
    )
    return response.status_code, response.json()


def stored_hash(stack: Stack, name: str) -> str:
    db = sqlite3.connect(stack.runtime / "guardian" / "guardian.db")
    try:
        (value,) = db.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()
    return str(value)


def test_a_locked_account_answers_like_an_unknown_user(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(single_uid=True)
    add_user(stack, "ada")
    for _ in range(5):
        assert login(stack, "ada", "wrong password")[0] == 401
    locked = login(stack, "ada", PASSWORD)
    unknown = login(stack, "nobody-by-this-name", PASSWORD)
    wrong = login(stack, "nobody-by-this-name", "wrong password")
    assert locked[0] == unknown[0] == wrong[0] == 401
    assert locked[1] == unknown[1] == wrong[1], (locked, unknown)


def test_new_passwords_get_600000_rounds_by_default(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(single_uid=True, env={"SEALGATE_PBKDF2_ROUNDS": ""})
    add_user(stack, "ada")
    assert pbkdf2_sha256.from_string(stored_hash(stack, "ada")).rounds == 600_000
    assert login(stack, "ada", PASSWORD)[0] == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_old_hash_is_upgraded_at_the_next_good_login(
    stack_factory: Callable[..., Stack],
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    env = {"SEALGATE_PBKDF2_ROUNDS": "2000"}
    if backend == "postgres":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        env["DATABASE_URL"] = request.getfixturevalue("pg_database")
    stack = stack_factory(single_uid=True, env=env)
    add_user(stack, "ada")
    # Stands for the old 29,000-round hashes: fewer rounds than this guardian is set to.
    old = pbkdf2_sha256.using(rounds=1000).hash(PASSWORD)
    if backend == "postgres":
        database = env["DATABASE_URL"].rsplit("/", 1)[-1]
        postgres.psql(
            f"UPDATE sealgate.users SET password_hash = '{old}' WHERE name = 'ada'", database
        )

        def current() -> str:
            return postgres.psql(
                "SELECT password_hash FROM sealgate.users WHERE name = 'ada'", database
            )
    else:
        db = sqlite3.connect(stack.runtime / "guardian" / "guardian.db")
        with db:
            db.execute("UPDATE users SET password_hash = ? WHERE name = 'ada'", (old,))
        db.close()

        def current() -> str:
            return stored_hash(stack, "ada")

    assert login(stack, "ada", "wrong password")[0] == 401
    assert current() == old  # a wrong password changes nothing
    assert login(stack, "ada", PASSWORD)[0] == 200
    upgraded = current()
    assert upgraded != old and pbkdf2_sha256.from_string(upgraded).rounds == 2000
    assert pbkdf2_sha256.verify(PASSWORD, upgraded)
    assert login(stack, "ada", PASSWORD)[0] == 200
