"""One real stack per run mode, with secrets in a file and in the environment, and a way to
run attacker code as its sandbox.

The two modes every test here runs in:

- `two-uid`: the supervisor as root, the guardian and the sandbox as `hub-guardian` and
  `hub-sandbox` (needs root, as CI runs).
- `one-uid`: a non-root container (Hugging Face Spaces runs uid 1000) reproduced as a
  supervisor running as an ordinary user: as root the tests create `hub-test-single` and
  start the supervisor as that user; as a normal user they start it as themselves. Either
  way no process of the stack has a privilege a non-root container would not have, which
  `HUB_SINGLE_UID=1` as root would not reproduce (root reads every file and /proc entry).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.world import w, world  # noqa: F401  (the provider world, for HTTP attacks)
from tests.helpers import (
    FAKE_SECRET,
    PYTHON,
    ROOT,
    Stack,
    gid_of,
    two_uid_possible,
    uid_of,
)

#: A secret that arrives as an environment variable of the supervisor, as a Space's do.
ENV_SECRET = "fake-gem-env-secret-9876543210fedcba"
SINGLE_USER = "hub-test-single"
MODES = ("two-uid", "one-uid")


@dataclass
class Deployment:
    """A running stack and what an attack on it needs."""

    mode: str
    stack: Stack
    sandbox_uid: int
    sandbox_gid: int

    @property
    def env_file(self) -> Path:
        return self.stack.dir / ".env"

    @property
    def guardian_db(self) -> Path:
        return self.stack.runtime / "guardian" / "guardian.db"

    @property
    def admin_socket(self) -> Path:
        return self.stack.runtime / "guardian" / "admin.sock"

    @property
    def guardian_socket(self) -> Path:
        return self.stack.runtime / "run" / "guardian.sock"

    def attack(self, **spec: Any) -> dict[str, Any]:
        """Run `tests.security.attack` as the sandbox's uid, under its restrictions."""
        kwargs: dict[str, Any] = {}
        if os.getuid() != self.sandbox_uid:
            kwargs = {"user": self.sandbox_uid, "group": self.sandbox_gid, "extra_groups": []}
        done = subprocess.run(
            [PYTHON, "-m", "tests.security.attack", json.dumps(spec)],
            env={
                "PYTHONPATH": str(ROOT),
                "PATH": "/usr/bin:/bin",
                "HUB_CONFIG": str(self.stack.config),
                "HUB_RUNTIME_DIR": str(self.stack.runtime),
            },
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **kwargs,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def _write_env_file(stack: Stack, uid: int, gid: int) -> None:
    path = stack.dir / ".env"
    path.write_text(f"ANTHROPIC_API_KEY={FAKE_SECRET}\n")
    os.chown(path, uid, gid)
    path.chmod(0o600)


def start_deployment(
    mode: str,
    *,
    before_start: Callable[[Stack, int, int], None] | None = None,
    wait: bool = True,
    **stack_kwargs: Any,
) -> Deployment:
    """Start a stack in `mode` (skipping when this machine cannot run it).

    `before_start(stack, uid, gid)` runs once the stack's directory exists (uid and gid:
    the supervisor's); with `wait=False` the supervisor is not waited for.
    """
    env = {"GEMINI_API_KEY": ENV_SECRET, **stack_kwargs.pop("env", {})}
    reason = two_uid_possible()
    if mode == "two-uid":
        if reason is not None:
            pytest.skip(reason)
        from supervise.users import ensure_user

        guardian = ensure_user("hub-guardian")
        stack = Stack(single_uid=False, env=env, **stack_kwargs)
        _write_env_file(stack, guardian.uid, guardian.gid)
        if before_start:
            before_start(stack, 0, 0)
        stack.start(wait=wait)
    elif os.geteuid() != 0:
        stack = Stack(single_uid=False, env=env, **stack_kwargs)
        _write_env_file(stack, os.getuid(), os.getgid())
        if before_start:
            before_start(stack, os.getuid(), os.getgid())
        stack.start(wait=wait)
    else:
        if reason is not None:
            pytest.skip(f"cannot run the supervisor as an ordinary user here: {reason}")
        from supervise.users import ensure_user

        user = ensure_user(SINGLE_USER)
        stack = Stack(single_uid=False, env=env, **stack_kwargs)
        _write_env_file(stack, user.uid, user.gid)
        for path in (stack.dir, *stack.dir.iterdir()):
            os.chown(path, user.uid, user.gid)
        if before_start:
            before_start(stack, user.uid, user.gid)
        log = stack.log_path.open("ab")
        stack.process = subprocess.Popen(
            [stack.python, str(ROOT / "supervisor.py")],
            env=stack.env,
            cwd=stack.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user.uid,
            group=user.gid,
            extra_groups=[],
        )
        log.close()
        try:
            if wait:
                stack.wait_healthy()
        except BaseException:
            stack.cleanup()
            raise
    if not wait:
        return Deployment(mode, stack, -1, -1)
    sandbox = stack.pid_of("sandbox")
    return Deployment(mode, stack, uid_of(sandbox), gid_of(sandbox))


@pytest.fixture(params=MODES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """A real stack in each run mode, with a secret in its env file and its environment."""
    started = start_deployment(request.param)
    try:
        yield started
    finally:
        started.stack.cleanup()
