"""Code running as the sandbox, under the sandbox's own restrictions, cannot reach a secret
or operator powers: not the env file, not the guardian's database, not the admin socket.

In two-uid mode file permissions already hold; in one-uid mode (a non-root container) only
Landlock's read rules and its abstract-socket scoping do. The attacker is
`tests.security.attack`, which applies the very policy the sandbox applies to itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol.adminaddr import address_file, connect_admin, new_name, read_published
from protocol.environment import SANDBOX_ENV_ALLOWLIST
from sandbox.selfsandbox import landlock_abi
from supervise.users import ensure_user
from tests.helpers import FAKE_SECRET, Stack, make_workdir, run_ctl, uid_of
from tests.security.conftest import ENV_SECRET, MODES, Deployment, start_deployment

DENIED = {"EACCES", "EPERM", "ENOENT", "ECONNREFUSED"}


def test_the_sandbox_reads_no_secret_file_and_never_reaches_the_admin_socket(
    deployment: Deployment,
) -> None:
    if deployment.mode == "one-uid":
        abstract = read_published(deployment.admin_socket).name
    else:
        abstract = new_name()  # no abstract admin socket with two uids
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
    assert_restricted(deployment, deployment.stack.pid_of("sandbox"))


@pytest.mark.parametrize("mode", MODES)
def test_every_sandbox_worker_runs_under_the_same_restrictions(mode: str) -> None:
    """`HUB_SANDBOX_WORKERS=2`: each process is restricted, secret-free and reported, not
    only the first."""
    deployment = start_deployment(mode, env={"HUB_SANDBOX_WORKERS": "2"})
    try:
        stack = deployment.stack
        deadline = time.monotonic() + 30
        while (
            len(stack.pids_of("sandbox")) < 2
            or stack.logs().count("self-sandboxing:") < 2
            or stack.logs().count("connected to the guardian") < 2  # each reported its own
        ):
            assert time.monotonic() < deadline, stack.logs()[-3000:]
            time.sleep(0.1)
        workers = stack.pids_of("sandbox")
        assert len(workers) == 2
        report = run_ctl(deployment.admin_socket, "status").stdout
        for pid in workers:
            assert_restricted(deployment, pid)
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert FAKE_SECRET.encode() not in environ and ENV_SECRET.encode() not in environ
            names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
            assert names <= set(SANDBOX_ENV_ALLOWLIST), names
            assert f"sandbox[{pid}] INFO sealgate.sandbox: self-sandboxing: no_new_privs on" in (
                stack.logs()
            )
            assert f"sandbox pid {pid} uid {deployment.sandbox_uid}: no_new_privs on" in report
    finally:
        deployment.stack.cleanup()


def assert_restricted(deployment: Deployment, sandbox: int) -> None:
    """The sandbox process `sandbox` is under its protections, as the sandbox's uid."""
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
    """What docs/SECURITY.md's run-mode table says remains on a kernel without Landlock."""
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


def test_operators_never_talk_to_an_impostor_on_the_abstract_name() -> None:
    """Any process of the guardian's uid (a same-uid sandbox) may bind an abstract name; the
    operator's client checks that the listener is the very process that published the
    address (SO_PEERCRED pid and its start time), not merely a process of the right uid,
    before sending a word."""
    work = make_workdir("sealgate-squat-")
    squatter = None
    try:
        guardian_dir = work / "guardian"
        guardian_dir.mkdir(mode=0o700)
        path = guardian_dir / "admin.sock"
        name = new_name()
        # published by "the guardian" (this process), held by another process of our uid
        published = {"address": "@" + name[1:], "pid": os.getpid(), "start": _start_time()}
        address_file(path).write_text(json.dumps(published))
        address_file(path).chmod(0o600)
        squatter = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind('\\0' + sys.argv[1]);"
                " s.listen(); print('ready', flush=True)\n"
                "while True:\n c = s.accept()[0]; c.settimeout(2)\n"
                " try: print('got', c.recv(100), flush=True)\n except OSError: pass",
                name[1:],
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert squatter.stdout is not None and squatter.stdout.readline() == "ready\n"
        with pytest.raises(PermissionError, match="refusing to talk to it"):
            connect_admin(path)
        done = run_ctl(path, "status")
        assert done.returncode == 3 and "permission denied" in done.stderr, done.stderr
        assert "not by the guardian that published it" in done.stderr
        squatter.kill()
        assert "got b'\\x" not in squatter.communicate()[0]  # not a byte was sent to it
    finally:
        if squatter is not None:
            squatter.kill()
            squatter.wait()
        shutil.rmtree(work, ignore_errors=True)


def test_an_address_file_others_may_write_is_refused() -> None:
    work = make_workdir("sealgate-addr-")
    try:
        path = work / "admin.sock"
        address_file(path).write_text(json.dumps({"address": "@x", "pid": 1, "start": 1}))
        address_file(path).chmod(0o666)
        with pytest.raises(PermissionError, match="not the guardian's own"):
            connect_admin(path)
        address_file(path).chmod(0o600)
        with pytest.raises(PermissionError, match="does not hold an admin address"):
            connect_admin(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _start_time() -> int:
    from protocol.adminaddr import start_time

    return start_time(os.getpid())
