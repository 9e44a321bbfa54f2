"""Which protections are in force is said where an operator looks: the status page (to a
signed-in user only), `sealgate-ctl status` and the start-up log; `/healthz`, being public,
says nothing about them.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest

from protocol.protections import EXPOSED, SandboxProtections, describe_report, landlock_rules
from sandbox.protections_page import protections_html
from sandbox.selfsandbox import landlock_abi
from tests.helpers import run_ctl
from tests.security.conftest import MODES, Deployment, start_deployment

BOOTSTRAP = "bootstrap-token-protections-0123456789"


@pytest.fixture(params=MODES)
def guarded(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A stack with auth on (a bootstrap admin), in each run mode."""
    started = start_deployment(request.param, env={"SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP})
    try:
        yield started
    finally:
        started.stack.cleanup()


def test_the_status_page_shows_protections_to_a_signed_in_user_only(
    guarded: Deployment,
) -> None:
    url = guarded.stack.url
    anonymous = httpx.get(f"{url}/", headers={"accept": "text/html"})
    assert anonymous.status_code == 401
    assert "Protections" not in anonymous.text and "landlock" not in anonymous.text.lower()
    page = httpx.get(
        f"{url}/", headers={"accept": "text/html", "authorization": f"Bearer {BOOTSTRAP}"}
    )
    assert page.status_code == 200
    assert "<h2>Protections</h2>" in page.text
    if guarded.mode == "two-uid":
        assert "two (guardian and sandbox apart)" in page.text
    else:
        assert "<strong>one</strong> (guardian and sandbox share a uid)" in page.text
    assert "<td id=prot-seccomp>on</td>" in page.text
    if landlock_abi():
        assert f"ABI {landlock_abi()}: reads confined" in page.text


def test_healthz_stays_minimal(guarded: Deployment) -> None:
    body = httpx.get(f"{guarded.stack.url}/healthz").json()
    assert set(body) <= {"status", "version", "guardian_uptime_s", "guardian"}


def test_ctl_status_and_the_start_up_log_say_which_protections(guarded: Deployment) -> None:
    done = run_ctl(guarded.admin_socket, "status")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    sandbox = guarded.stack.pid_of("sandbox")
    assert f"sandbox pid {sandbox} uid {guarded.sandbox_uid}: no_new_privs on" in out
    assert "seccomp filter" in out and "guardian dumpable: no" in out
    assert f"kernel Landlock ABI: {landlock_abi() or 'none'}" in out
    rules = ", ".join(landlock_rules(landlock_abi())) or "none"
    assert f"sandbox Landlock rules at this ABI: {rules}" in out
    logs = guarded.stack.logs()
    assert "protections in force:" in logs  # the sandbox's own account
    if guarded.mode == "two-uid":
        assert "two uids" in out and "protections: two uids" in logs
        assert f"admin socket: {guarded.admin_socket}" in out
    else:
        assert "ONE uid" in out and "protections: ONE uid" in logs
        assert "admin socket: @sealgate-admin-" in out
    assert EXPOSED not in logs  # this kernel has Landlock: not exposed


def test_exposure_is_said_loudly() -> None:
    exposed = SandboxProtections(two_uids=False, no_new_privs=True, landlock_abi=0)
    assert exposed.exposed
    assert html.escape(EXPOSED) in protections_html(exposed)
    assert "ONE uid" in exposed.describe() and "landlock unavailable" in exposed.describe()
    report = {
        "uids": "one",
        "guardian_uid": 1000,
        "sandbox_uid": 1000,
        "guardian_dumpable": False,
        "kernel_landlock_abi": 0,
        "admin_socket": "@x",
        "sandboxes": [],
    }
    assert EXPOSED in describe_report(report)
    for safe in (
        SandboxProtections(two_uids=True, no_new_privs=True, landlock_abi=0),
        SandboxProtections(two_uids=False, no_new_privs=True, landlock_abi=7),
    ):
        assert not safe.exposed and html.escape(EXPOSED) not in protections_html(safe)


def test_the_rules_follow_the_landlock_abi() -> None:
    assert landlock_rules(0) == ()
    assert not any("TCP" in rule for rule in landlock_rules(3))
    assert "TCP connect/bind blocked" in landlock_rules(4)
    assert "abstract sockets and signals scoped" not in landlock_rules(5)
    assert "abstract sockets and signals scoped" in landlock_rules(7)
