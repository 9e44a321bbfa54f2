"""Users, logins, sessions and tokens on a real guardian, driven through the operator CLI and
the sandbox socket."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.client import RPCClient
from protocol.errors import InvalidParams, RateLimited, Unauthenticated
from tests.helpers import ROOT, GuardianProcess, rpc_as_sandbox, run_ctl

BOOTSTRAP = "bootstrap-token-for-tests-0123456789"
UA = "pytest-agent"


def ctl(guardian: GuardianProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_ctl(guardian.admin_path, *args, stdin=stdin)


@pytest.fixture
def guardian() -> Iterator[GuardianProcess]:
    process = GuardianProcess(env={"SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP}).start()
    yield process
    process.stop()


@pytest.fixture
async def rpc(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await rpc_as_sandbox(guardian.socket_path, 5)
    yield client
    await client.close()


def caller(credential: str | None = None, ip: str = "10.0.0.1", ua: str = UA) -> dict[str, Any]:
    wire: dict[str, Any] = {"ip": ip, "user_agent": ua}
    if credential is not None:
        wire["credential"] = credential
    return wire


async def login(rpc: RPCClient, user: str, password: str, ip: str = "10.0.0.1") -> dict[str, Any]:
    return await rpc.call(
        "auth.login", {"caller": caller(ip=ip), "username": user, "password": password}
    )


async def test_bootstrap_token_creates_admin_once(
    guardian: GuardianProcess, rpc: RPCClient
) -> None:
    who = await rpc.call("auth.verify", {"caller": caller(BOOTSTRAP)})
    assert who["principal"] == "admin" and who["admin"] and who["auth_enabled"]
    with pytest.raises(Unauthenticated):
        await rpc.call("auth.verify", {"caller": caller()})
    assert "bootstrap: created user admin" in guardian.logs()
    # a restart with the same variable creates nothing more
    guardian.process.terminate()  # type: ignore[union-attr]
    guardian.process.wait(10)  # type: ignore[union-attr]
    guardian.start()
    assert guardian.logs().count("bootstrap: created user admin") == 1


async def test_login_lockout_unlock_and_only_hashes_stored(
    guardian: GuardianProcess, rpc: RPCClient
) -> None:
    added = ctl(guardian, "users", "add", "ada", "--role", "user", stdin="correct horse\n")
    assert added.returncode == 0, added.stderr
    session = await login(rpc, "ada", "correct horse")
    who = await rpc.call("auth.verify", {"caller": caller(session["session"])})
    assert who["principal"] == "ada" and not who["admin"]
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="invalid user name or password"):
            await login(rpc, "ada", "wrong password")
    with pytest.raises(Unauthenticated, match="locked"):
        await login(rpc, "ada", "correct horse")
    assert ctl(guardian, "users", "unlock", "ada").returncode == 0
    assert (await login(rpc, "ada", "correct horse"))["principal"] == "ada"
    audit = sqlite3.connect(guardian.runtime / "guardian" / "guardian.db")
    refused = audit.execute(
        "SELECT ip, detail FROM audit WHERE action = 'login' AND outcome = 'refused'"
    ).fetchall()
    assert len(refused) == 6 and refused[0][0] == "10.0.0.1"
    raw = (guardian.runtime / "guardian" / "guardian.db").read_bytes()
    raw += (guardian.runtime / "guardian" / "guardian.db-wal").read_bytes()
    assert b"correct horse" not in raw and session["session"].encode() not in raw
    assert b"pbkdf2-sha256" in raw
    audit.close()


async def test_session_is_bound_to_ip_and_user_agent(
    guardian: GuardianProcess, rpc: RPCClient
) -> None:
    ctl(guardian, "users", "add", "bob", stdin="bob's password\n")
    session = (await login(rpc, "bob", "bob's password"))["session"]
    for other in (caller(session, ip="10.9.9.9"), caller(session, ua="another-agent")):
        with pytest.raises(Unauthenticated):
            await rpc.call("auth.verify", {"caller": other})
    await rpc.call("auth.logout", {"caller": caller(session)})
    with pytest.raises(Unauthenticated):
        await rpc.call("auth.verify", {"caller": caller(session)})


async def test_tokens_issue_use_revoke_and_expire(
    guardian: GuardianProcess, rpc: RPCClient
) -> None:
    ctl(guardian, "users", "add", "carol", stdin="carol's password\n")
    issued = ctl(guardian, "tokens", "issue", "--user", "carol", "--label", "laptop")
    token = issued.stdout.strip()
    assert issued.returncode == 0 and token.startswith("sg_") and len(token) == 46
    assert (await rpc.call("auth.verify", {"caller": caller(token)}))["principal"] == "carol"
    listed = ctl(guardian, "--json", "tokens", "list", "--user", "carol")
    assert token not in listed.stdout and '"label": "laptop"' in listed.stdout
    assert ctl(guardian, "tokens", "revoke", token).returncode == 0
    time.sleep(0.1)
    with pytest.raises(Unauthenticated):
        await rpc.call("auth.verify", {"caller": caller(token)})
    # an expired token: issue one, then move its expiry into the past
    expiring = ctl(guardian, "--json", "tokens", "issue", "--user", "carol", "--expires", "1h")
    assert '"token": "sg_' in expiring.stdout
    db = sqlite3.connect(guardian.runtime / "guardian" / "guardian.db")
    db.execute(
        "UPDATE api_tokens SET expires_at = ? WHERE revoked_at IS NULL AND user_name = 'carol'",
        (time.time() - 1,),
    )
    db.commit()
    db.close()
    with pytest.raises(Unauthenticated):
        await rpc.call("auth.verify", {"caller": caller(json.loads(expiring.stdout)["token"])})


def test_cli_exit_codes_and_messages(guardian: GuardianProcess) -> None:
    assert ctl(guardian, "ping").returncode == 0
    missing = ctl(guardian, "users", "lock", "nobody")
    assert missing.returncode == 1 and "not_found" in missing.stderr
    assert ctl(guardian, "users", "frobnicate").returncode == 2
    assert ctl(guardian, "tokens", "issue", "--user", "admin", "--expires", "soon").returncode == 2
    no_password = ctl(guardian, "users", "add", "dave", stdin="")
    assert no_password.returncode == 2 and "no password" in no_password.stderr
    short = ctl(guardian, "users", "add", "dave", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    down = subprocess.run(
        [sys.executable, "-m", "guardian.ctl", "--socket", "/nonexistent/a.sock", "ping"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert down.returncode == 3 and "is the guardian running" in down.stderr
    assert "Traceback" not in down.stderr + missing.stderr + short.stderr
    listing = ctl(guardian, "users", "list")
    assert listing.returncode == 0 and "admin" in listing.stdout and "NAME" in listing.stdout


async def test_a_sealed_call_cannot_claim_a_principal(rpc: RPCClient) -> None:
    with pytest.raises(InvalidParams, match="unknown parameter 'principal'"):
        await rpc.call(
            "llm.complete",
            {
                "caller": caller(BOOTSTRAP),
                "tool": "llm_complete",
                "prompt": "x",
                "principal": "admin",
            },
        )


async def test_login_attempts_are_limited_per_address(rpc: RPCClient) -> None:
    for index in range(20):
        with pytest.raises(Unauthenticated):
            await login(rpc, f"nobody-{index}", "guess", ip="10.7.7.7")
    with pytest.raises(RateLimited) as limited:
        await login(rpc, "nobody-else", "guess", ip="10.7.7.7")
    assert limited.value.data["retry_after_s"] >= 1
    with pytest.raises(Unauthenticated):  # another address is not affected
        await login(rpc, "nobody", "guess", ip="10.8.8.8")
