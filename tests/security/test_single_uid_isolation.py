"""Code running as the sandbox, under the sandbox's own restrictions, cannot reach a secret
or operator powers: not the env file, not the guardian's database, not the admin socket.

In two-uid mode file permissions already hold; in one-uid mode (a non-root container) only
Landlock's read rules and its abstract-socket scoping do. The attacker is
`tests.security.attack`, which applies the very policy the sandbox applies to itself.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from protocol.adminaddr import abstract_name, connect_admin
from sandbox.selfsandbox import landlock_abi
from supervisor import ensure_user
from tests.helpers import FAKE_SECRET, Stack, make_workdir, run_ctl, uid_of
from tests.security.conftest import MODES, Deployment, start_deployment

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
    for task in Path(f"/proc/{sandbox}/task").iterdir():  # every thread, not just the first
        assert "Seccomp:\t2" in (task / "status").read_text()
    logs = deployment.stack.logs()
    assert "NOT restricted" not in logs  # no thread escaped Landlock
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


@pytest.mark.parametrize("mode", MODES)
def test_a_secret_beneath_a_sandbox_readable_path_is_refused(mode: str) -> None:
    """One uid: Landlock is all that keeps the env file from the sandbox, so an env file
    beneath a path the sandbox may read (here its socket directory) stops the start. Two
    uids: file permissions keep it, and the start goes on."""

    def env_file_in_run_dir(stack: Stack, uid: int, gid: int) -> None:
        run_dir = stack.runtime / "run"
        run_dir.mkdir(parents=True)
        for path in (stack.runtime, run_dir):
            os.chown(path, uid, gid)
        env_file = run_dir / "secrets.env"
        env_file.write_text(f"ANTHROPIC_API_KEY={FAKE_SECRET}\n")
        env_file.chmod(0o600)
        owner = ensure_user("hub-guardian") if mode == "two-uid" else None
        os.chown(env_file, owner.uid if owner else uid, owner.gid if owner else gid)
        stack.env["HUB_ENV_FILE"] = str(env_file)

    deployment = start_deployment(mode, before_start=env_file_in_run_dir, wait=False)
    stack = deployment.stack
    try:
        assert stack.process is not None
        if mode == "one-uid":
            assert stack.process.wait(timeout=60) == 78, stack.logs()
            assert (
                f"{stack.runtime / 'run' / 'secrets.env'} lies beneath {stack.runtime / 'run'},"
                " which the sandbox may read" in stack.logs()
            )
        else:
            stack.wait_healthy()
            assert "llm providers [anthropic, gemini]" in stack.logs()
        assert FAKE_SECRET not in stack.logs()
    finally:
        stack.cleanup()


def test_operators_never_talk_to_a_stranger_on_the_abstract_name() -> None:
    """Anyone may bind an abstract name first; the operator's client checks the listener's
    uid against the owner of the guardian directory before sending a word."""
    work = make_workdir("sealgate-squat-")
    try:
        guardian_dir = work / "guardian"
        guardian_dir.mkdir()
        if os.geteuid() == 0:
            os.chown(guardian_dir, 65534, 65534)  # the guardian's; we, root, are the stranger
        else:
            guardian_dir = Path("/usr")  # root's; we are the stranger
        path = guardian_dir / f"admin-{os.getpid()}.sock"
        with socket.socket(socket.AF_UNIX) as squatter:
            squatter.bind(abstract_name(path))
            squatter.listen()
            with pytest.raises(PermissionError, match="refusing to talk to it"):
                connect_admin(path)
            done = run_ctl(path, "status")
            assert done.returncode == 3 and "permission denied" in done.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
