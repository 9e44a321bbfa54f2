"""The supervisor never follows a link planted in the runtime directory, and refuses a
runtime root the sandbox could plant one in.

The attack: the sandbox's user owns `var/sandbox/`; where it can rename entries of `var/`
(a world-writable image directory), it replaces `var/sandbox` with a link to a directory of
root's, and a root supervisor's `mkdir`/`chown`/`chmod` on restart hands that directory over.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from protocol.runtime import RuntimeLayout
from supervise.outcomes import Refusal
from supervise.runtime_dirs import prepare_runtime
from supervise.users import Identity
from tests.helpers import PYTHON, ROOT, GuardianProcess, Stack, make_workdir
from tests.security.conftest import MODES, start_deployment

EX_CONFIG = 78


def _victim(stack: Stack, uid: int, gid: int) -> Path:
    victim = stack.dir / "victim"
    victim.mkdir(mode=0o700, exist_ok=True)
    os.chown(victim, uid, gid)
    victim.chmod(0o700)
    return victim


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("planted", ["sandbox", "run", "guardian"])
def test_a_planted_link_is_refused_and_its_target_untouched(mode: str, planted: str) -> None:
    def plant(stack: Stack, uid: int, gid: int) -> None:
        victim = _victim(stack, uid, gid)
        stack.runtime.mkdir(mode=0o755)
        os.chown(stack.runtime, uid, gid)
        (stack.runtime / planted).symlink_to(victim)

    deployment = start_deployment(mode, before_start=plant, wait=False)
    stack = deployment.stack
    try:
        assert stack.process is not None
        assert stack.process.wait(timeout=60) == EX_CONFIG, stack.logs()
        assert f"{stack.runtime / planted} is a symbolic link" in stack.logs()
        victim = (stack.dir / "victim").stat()
        assert stat.S_IMODE(victim.st_mode) == 0o700
        assert victim.st_uid == (0 if mode == "two-uid" else stack.dir.stat().st_uid)
    finally:
        stack.cleanup()


@pytest.mark.parametrize("mode", MODES)
def test_a_world_writable_runtime_root_is_refused(mode: str) -> None:
    def open_root(stack: Stack, uid: int, gid: int) -> None:
        stack.runtime.mkdir()
        os.chown(stack.runtime, uid, gid)
        stack.runtime.chmod(0o1777)

    deployment = start_deployment(mode, before_start=open_root, wait=False)
    stack = deployment.stack
    try:
        assert stack.process is not None
        assert stack.process.wait(timeout=60) == EX_CONFIG, stack.logs()
        assert f"the runtime directory {stack.runtime} is writable by the sandbox" in stack.logs()
    finally:
        stack.cleanup()


def test_prepare_runtime_refuses_a_link_in_process() -> None:
    """The same, without processes: whoever runs the tests."""
    work = make_workdir("sealgate-runtime-")
    try:
        target = work / "target"
        target.mkdir(mode=0o700)
        layout = RuntimeLayout(work / "var")
        layout.root.mkdir()
        layout.sandbox_dir.symlink_to(target)
        me = Identity.current()
        with pytest.raises(Refusal, match="is a symbolic link"):
            prepare_runtime(layout, me, me)
        assert stat.S_IMODE(target.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_image_has_no_world_writable_runtime_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    octal = re.findall(r"chmod\s+(?:-R\s+)?([0-7]{3,4})\b", text)
    assert octal, "the Dockerfile sets no mode at all?"
    for mode in octal:
        assert int(mode[-1]) & 0o2 == 0, f"world-writable mode {mode} in the Dockerfile"
    symbolic = re.findall(r"chmod\s+(?:-R\s+)?([ugoa]*)[+=]([rwxXst]+)", text)
    for who, perms in symbolic:
        assert not ("w" in perms and (who == "" or "o" in who or "a" in who)), (who, perms)


def test_the_guardian_refuses_a_socket_directory_the_sandbox_could_replace() -> None:
    """Without the supervisor (a Kubernetes container, a systemd unit) the guardian checks
    `run/` itself: in a directory anyone may write (an emptyDir's root is 0777) it does not
    start, and says why; in its own directory it does."""
    unsafe = GuardianProcess()
    try:
        unsafe.runtime.chmod(0o777)
        with unsafe.log_path.open("ab") as log:
            process = subprocess.Popen(
                [PYTHON, "-m", "guardian"],
                env=unsafe.env,
                cwd=unsafe.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        assert process.wait(30) == EX_CONFIG
        text = unsafe.logs()
        assert "the socket directory is not safe" in text and "writable by other users" in text
        assert "Traceback" not in text
        assert not (unsafe.runtime / "run" / "guardian.sock").exists()
        unsafe.runtime.chmod(0o755)
        unsafe.start()  # the same directory, no longer replaceable: it starts
    finally:
        unsafe.stop()
