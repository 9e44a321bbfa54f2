"""Deleting the last user reopens the gateway: the CLI asks first and says so (issue 24,
item 7)."""

from __future__ import annotations

import json
import os
import subprocess

from tests.helpers import PYTHON, ROOT, GuardianProcess, base_env, run_ctl


def names(guardian: GuardianProcess) -> list[str]:
    listing = json.loads(run_ctl(guardian.admin_path, "--json", "users", "list").stdout)
    return [u["name"] for u in listing["users"]]


def test_the_last_user_is_deleted_only_when_confirmed(guardian: GuardianProcess) -> None:
    admin = guardian.admin_path
    for name in ("ada", "bob"):
        assert run_ctl(admin, "users", "add", name, stdin="a long passphrase\n").returncode == 0
    done = run_ctl(admin, "users", "delete", "bob")  # another user remains: no question
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("user bob deleted, with every API token, session")

    refused = run_ctl(admin, "users", "delete", "ada")  # no terminal, no --yes: refused
    assert refused.returncode == 1, refused.stdout
    assert "ada is the last user" in refused.stderr and "open mode" in refused.stderr
    assert "--yes" in refused.stderr and "Not deleted" in refused.stderr
    as_json = run_ctl(admin, "--json", "users", "delete", "ada")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "not_confirmed"
    assert names(guardian) == ["ada"]

    done = run_ctl(admin, "users", "delete", "ada", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("user ada deleted,") and "\nauth is now OFF" in done.stdout
    assert "open mode returns" in done.stdout and "sealgate-ctl users add" in done.stdout
    assert names(guardian) == []
    assert "no user remains: auth is off" in guardian.logs()


def test_the_json_answer_says_auth_went_off(guardian: GuardianProcess) -> None:
    admin = guardian.admin_path
    assert run_ctl(admin, "users", "add", "ada", stdin="a long passphrase\n").returncode == 0
    done = run_ctl(admin, "--json", "users", "delete", "ada", "--yes")
    assert json.loads(done.stdout) == {"ok": True, "auth_switched_off": True, "open_mode": True}


def test_a_person_at_the_terminal_is_asked(guardian: GuardianProcess) -> None:
    admin = guardian.admin_path
    assert run_ctl(admin, "users", "add", "ada", stdin="a long passphrase\n").returncode == 0
    for answer, deleted in (("n\n", False), ("y\n", True)):
        leader, follower = os.openpty()
        try:
            os.write(leader, answer.encode())
            done = subprocess.run(
                [PYTHON, "-m", "guardian.ctl", "--socket", str(admin), "users", "delete", "ada"],
                stdin=follower,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=base_env({"PYTHONPATH": str(ROOT)}),
                timeout=60,
                check=False,
            )
        finally:
            os.close(leader)
            os.close(follower)
        assert "ada is the last user" in done.stdout and "[y/N]" in done.stdout
        assert done.returncode == (0 if deleted else 1), done.stderr
        assert names(guardian) == ([] if deleted else ["ada"])
