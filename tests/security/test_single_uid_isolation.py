"""Code running as the sandbox, under the sandbox's own restrictions, cannot reach a secret
or operator powers: not the env file, not the guardian's database, not the admin socket.

In two-uid mode file permissions already hold; in one-uid mode (a non-root container) only
Landlock's read rules and its abstract-socket scoping do. The attacker is
`tests.security.attack`, which applies the very policy the sandbox applies to itself.
"""

from __future__ import annotations

from pathlib import Path

from protocol.adminaddr import abstract_name
from sandbox.selfsandbox import landlock_abi
from tests.helpers import FAKE_SECRET, run_ctl, uid_of
from tests.security.conftest import Deployment

DENIED = {"EACCES", "EPERM", "ENOENT", "ECONNREFUSED"}


def test_the_sandbox_reads_no_secret_file_and_never_reaches_the_admin_socket(
    deployment: Deployment,
) -> None:
    abstract = abstract_name(deployment.admin_socket)
    out = deployment.attack(
        read=[str(deployment.env_file), str(deployment.guardian_db), str(deployment.stack.config)],
        unix=[str(deployment.admin_socket), abstract, str(deployment.guardian_socket)],
    )
    assert out[f"read {deployment.env_file}"] == "EACCES", out
    assert out[f"read {deployment.guardian_db}"] == "EACCES", out
    assert out[f"unix {str(deployment.admin_socket)!r}"] in DENIED, out
    assert out[f"unix {abstract!r}"] in DENIED, out
    # ...while what the sandbox needs still works, so the denials above are not an accident
    assert out[f"read {deployment.stack.config}"] == "ok", out
    assert out[f"unix {str(deployment.guardian_socket)!r}"] == "ok", out
    if deployment.mode == "one-uid":
        # no file stands for the admin socket, and the abstract one is scoped away
        assert out[f"unix {str(deployment.admin_socket)!r}"] == "ENOENT", out
        assert out[f"unix {abstract!r}"] == "EPERM", out


def test_operators_still_reach_the_admin_socket(deployment: Deployment) -> None:
    done = run_ctl(deployment.admin_socket, "status")
    assert done.returncode == 0, done.stderr
    assert "guardian dumpable: no" in done.stdout
    uids = "ONE uid" if deployment.mode == "one-uid" else "two uids"
    assert uids in done.stdout


def test_the_real_sandbox_runs_under_the_same_restrictions(deployment: Deployment) -> None:
    sandbox = deployment.stack.pid_of("sandbox")
    status = Path(f"/proc/{sandbox}/status").read_text()
    assert "NoNewPrivs:\t1" in status
    assert "Seccomp:\t2" in status
    logs = deployment.stack.logs()
    if landlock_abi() >= 6:
        assert "reads confined to code, Python, certificates, config, state" in logs
        assert "abstract sockets and signals scoped" in logs
    assert uid_of(sandbox) == deployment.sandbox_uid
    assert FAKE_SECRET not in logs


def test_without_landlock_one_uid_is_exposed_and_says_so(deployment: Deployment) -> None:
    """What the README's table says remains on a kernel without Landlock."""
    out = deployment.attack(landlock=False, read=[str(deployment.env_file)])
    if deployment.mode == "two-uid":
        assert out[f"read {deployment.env_file}"] == "EACCES", out
    else:
        assert out[f"read {deployment.env_file}"] == "ok", out
    assert "landlock unavailable" in out["applied"]
