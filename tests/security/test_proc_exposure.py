"""Secrets that arrive as environment variables (a Space's secrets) sit in the environ and
memory of every process started before the sandbox. From the sandbox's uid, with and without
Landlock, none of them can be read out of /proc: the guardian and the supervisor are not
dumpable (their /proc files belong to root, no same-uid ptrace), Landlock hides /proc beyond
the sandbox's own, and the supervisor overwrites the values in its original environ block.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FAKE_SECRET, run_ctl
from tests.security.conftest import ENV_SECRET, Deployment


@pytest.mark.parametrize("landlock", [True, False], ids=["landlock", "no-landlock"])
def test_no_secret_in_any_readable_proc_file(deployment: Deployment, landlock: bool) -> None:
    stack = deployment.stack
    assert stack.process is not None
    ours = {
        str(stack.process.pid): "supervisor",
        str(stack.pid_of("guardian")): "guardian",
        str(stack.pid_of("sandbox")): "sandbox",
    }
    assert "llm providers [anthropic, gemini]" in stack.logs()  # the guardian has both
    for secret in (ENV_SECRET, FAKE_SECRET):
        out = deployment.attack(landlock=landlock, secret_hex=secret.encode().hex())
        proc = out["proc"]
        leaks = {ours[pid]: where for pid, where in proc["found"].items() if pid in ours}
        assert leaks == {}, f"{secret} readable from the sandbox's uid: {leaks}"
        if landlock:
            # Landlock leaves the sandbox no other process's /proc files at all
            readable = {ours.get(pid, pid) for pid in proc.get("readable", {})}
            assert readable <= {"sandbox"}, readable


def test_the_guardian_and_the_supervisor_are_not_dumpable(deployment: Deployment) -> None:
    """Without Landlock, the sandbox's uid still opens neither their environ nor their mem."""
    stack = deployment.stack
    assert stack.process is not None
    out = deployment.attack(landlock=False, secret_hex=b"no-such-secret".hex())
    for pid in (stack.process.pid, stack.pid_of("guardian")):
        assert "environ" not in out["proc"]["readable"].get(str(pid), []), out["proc"]
    status = json.loads(run_ctl(deployment.admin_socket, "--json", "status").stdout)
    assert status["protections"]["guardian_dumpable"] is False


def test_the_supervisor_scrubs_its_environ(deployment: Deployment) -> None:
    """Even root, who may read a non-dumpable environ, finds the values gone from it."""
    stack = deployment.stack
    assert stack.process is not None
    try:
        environ = Path(f"/proc/{stack.process.pid}/environ").read_bytes()
    except PermissionError:
        pytest.skip("only root may read a non-dumpable process's environ")
    assert ENV_SECRET.encode() not in environ
    assert b"GEMINI_API_KEY=" in environ  # the name stays, its value is gone
    assert f"HUB_PORT={stack.port}".encode() in environ  # no secret: kept
