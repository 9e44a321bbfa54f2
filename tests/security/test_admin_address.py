"""One uid: the sandbox squats the guardian's abstract admin name while the guardian is down.

Landlock's abstract-socket scoping stops the sandbox *connecting* to the guardian's admin
name, not *binding* it. With a name derived from the socket's path, a compromised sandbox
that held it while the guardian restarted kept the guardian from starting (exit 78, the hub
down), and `sealgate-ctl` talked to the sandbox (a `users add` password arrived there). Now
each start draws a random name, published in the guardian's own directory, and the CLI
talks only to the process that published it.

The squatter runs as the sandbox's uid under the sandbox's own policy, and watches for the
name in /proc/net/unix, where the sandbox can see it; it binds it the moment it is free.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from protocol.adminaddr import read_published
from tests.helpers import PYTHON, ROOT, Stack, run_ctl
from tests.security.conftest import ENV_SECRET, Deployment, _write_env_file, start_deployment

SQUATTER = """
import json, os, signal, socket, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from protocol.runtime import RuntimeLayout
from sandbox.selfsandbox import apply, sandbox_policy
applied = apply(sandbox_policy(
    RuntimeLayout(Path(os.environ["HUB_RUNTIME_DIR"])), Path(os.environ["HUB_CONFIG"])
))
held, seen, received, stop = {}, set(), [], []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
def look():
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        fields = line.split()
        # names of this stack's guardian only: other stacks on this machine are no target
        if len(fields) >= 8 and fields[7] == sys.argv[2]:
            seen.add(fields[7])
while not seen:  # ready only once the guardian's name was seen: the kill may follow at once
    look()
    time.sleep(0.01)
print("ready", applied.describe(), flush=True)
while not stop:
    look()
    for name in seen - set(held):  # listed while the guardian holds it; free once it died
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind("\\0" + name[1:])
            sock.listen()
            sock.setblocking(False)
            held[name] = sock
        except OSError:
            sock.close()
    for sock in held.values():
        try:
            conn = sock.accept()[0]
            conn.settimeout(1)
            received.append(len(conn.recv(65536)))
            conn.close()
        except OSError:
            pass
    time.sleep(0.01)
print(json.dumps({"held": sorted(held), "received": received}), flush=True)
"""


def start(mode: str) -> Deployment:
    if mode == "one-uid":
        return start_deployment(mode)
    if os.geteuid() != 0:
        pytest.skip("HUB_SINGLE_UID=1 as root needs root")
    stack = Stack(single_uid=True, env={"GEMINI_API_KEY": ENV_SECRET})
    _write_env_file(stack, 0, 0)
    try:
        stack.start()
    except BaseException:
        stack.cleanup()
        raise
    return Deployment(mode, stack, 0, 0)


def squatter(deployment: Deployment, name: str) -> subprocess.Popen[str]:
    kwargs: dict[str, Any] = {}
    if os.getuid() != deployment.sandbox_uid:
        kwargs = {
            "user": deployment.sandbox_uid,
            "group": deployment.sandbox_gid,
            "extra_groups": [],
        }
    process = subprocess.Popen(
        [PYTHON, "-c", SQUATTER, str(ROOT), "@" + name[1:]],
        env={
            "PATH": "/usr/bin:/bin",
            "HUB_CONFIG": str(deployment.stack.config),
            "HUB_RUNTIME_DIR": str(deployment.stack.runtime),
        },
        cwd="/",
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert ready.startswith("ready") and "landlock ABI" in ready, ready
    return process


@pytest.mark.parametrize("mode", ["one-uid", "one-uid-root"])
def test_a_squatted_admin_name_neither_stops_a_restart_nor_fools_the_cli(mode: str) -> None:
    deployment = start(mode)
    stack = deployment.stack
    squat = None
    try:
        old = read_published(deployment.admin_socket)
        squat = squatter(deployment, old.name)
        guardian = stack.pid_of("guardian")
        os.kill(guardian, signal.SIGKILL)  # down: its name is free for a moment
        deadline = time.monotonic() + 40
        while True:
            assert stack.process is not None
            code = stack.process.poll()
            assert code is None, f"the supervisor stopped (exit {code}):\n{stack.logs()[-3000:]}"
            done = run_ctl(deployment.admin_socket, "status")
            if done.returncode == 0:
                break
            assert time.monotonic() < deadline, done.stderr + stack.logs()[-3000:]
            time.sleep(0.2)
        new = read_published(deployment.admin_socket)
        assert new.name != old.name and new.pid == stack.pid_of("guardian") != guardian
        stack.wait_healthy()
        added = run_ctl(deployment.admin_socket, "users", "add", "bob", stdin="a password here\n")
        assert added.returncode == 0, added.stderr
        squat.send_signal(signal.SIGTERM)
        out, _ = squat.communicate(timeout=10)
        result = json.loads(out.strip().splitlines()[-1])
        assert "@" + old.name[1:] in result["held"], result  # the squat did happen
        # the CLI may connect while the old address is still published, but leaves
        # without a word once SO_PEERCRED names another process
        assert set(result["received"]) <= {0}, result
    finally:
        if squat is not None and squat.poll() is None:
            squat.kill()
            squat.wait()
        stack.cleanup()


def test_the_guardian_draws_a_new_name_at_each_start(stack_factory: Any) -> None:
    """Unpredictable: two starts of one runtime directory never share a name."""
    if sys.platform != "linux":
        pytest.skip("abstract sockets are Linux's")
    stack = stack_factory(single_uid=True)
    admin = stack.runtime / "guardian" / "admin.sock"
    first = read_published(admin)
    assert stack.stop() == 0
    stack.start()
    second = read_published(admin)
    assert first.name != second.name and first.pid != second.pid
