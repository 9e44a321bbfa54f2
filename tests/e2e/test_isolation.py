"""Two uids, peer credentials and secret file checks: run as root, as CI does."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol.channel import open_unix_channel
from protocol.errors import ConnectionLost
from supervise.users import ensure_user
from tests.helpers import FAKE_SECRET, ROOT, Stack, two_uid_possible, uid_of

REASON = two_uid_possible()
needs_two_uids = pytest.mark.skipif(REASON is not None, reason=REASON or "")

PROBE = """
import sys
try:
    open(sys.argv[1], "rb").read(1)
except PermissionError:
    sys.exit(13)
sys.exit(0)
"""


def _open_as(uid: int, gid: int, path: Path) -> int:
    """Exit status of trying to read `path` as uid/gid (13: permission denied)."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        user=uid,
        group=gid,
        extra_groups=[],
        cwd="/",
        check=False,
    ).returncode


def _secret_env_file(stack_dir: Path) -> Path:
    guardian = ensure_user("hub-guardian")
    path = stack_dir / ".env"
    path.write_text(f"ANTHROPIC_API_KEY={FAKE_SECRET}\n")
    os.chown(path, guardian.uid, guardian.gid)
    path.chmod(0o600)
    return path


@needs_two_uids
def test_two_uids_and_the_sandbox_cannot_read_guardian_files(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(before_start=lambda s: _secret_env_file(s.dir))
    env_file = stack.dir / ".env"
    guardian, sandbox = stack.pid_of("guardian"), stack.pid_of("sandbox")
    g_uid, s_uid = uid_of(guardian), uid_of(sandbox)
    assert g_uid != s_uid and 0 not in (g_uid, s_uid)
    assert pwd.getpwuid(g_uid).pw_name == "hub-guardian"
    assert pwd.getpwuid(s_uid).pw_name == "hub-sandbox"
    s_gid = pwd.getpwuid(s_uid).pw_gid
    db = stack.runtime / "guardian" / "guardian.db"
    assert db.exists()
    assert _open_as(s_uid, s_gid, env_file) == 13
    assert _open_as(s_uid, s_gid, db) == 13
    # ...while the guardian's user can, so the probe itself is sound
    assert _open_as(g_uid, pwd.getpwuid(g_uid).pw_gid, env_file) == 0
    # the key in the env file reached the guardian only
    assert "llm providers [anthropic]" in stack.logs()
    environ = Path(f"/proc/{sandbox}/environ").read_bytes()
    assert FAKE_SECRET.encode() not in environ
    assert stack.stop() == 0
    assert FAKE_SECRET not in stack.logs()


@needs_two_uids
def test_a_connection_from_another_uid_is_refused(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    socket_path = stack.runtime / "run" / "guardian.sock"
    sandbox_gid = pwd.getpwnam("hub-sandbox").pw_gid
    other = ensure_user("hub-test-other")
    # In the sandbox's group, so file permissions let it connect: only SO_PEERCRED refuses it.
    script = (
        "import asyncio, sys\n"
        "from protocol.channel import open_unix_channel\n"
        "from protocol.errors import ConnectionLost\n"
        "async def main():\n"
        f"    ch = await open_unix_channel({str(socket_path)!r})\n"
        "    ch.send([0, 1, 'hello', {'protocol_version': 1, 'client': 'sandbox'}])\n"
        "    try:\n"
        "        await asyncio.wait_for(ch.receive(), 5)\n"
        "    except ConnectionLost:\n"
        "        sys.exit(42)\n"
        "    sys.exit(0)\n"
        "asyncio.run(main())\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", script],
        user=other.uid,
        group=sandbox_gid,
        extra_groups=[],
        cwd="/",
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )
    assert probe.returncode == 42, probe.stderr.decode()
    assert f"refused a sandbox connection from uid {other.uid}" in stack.logs()


@needs_two_uids
async def test_root_is_refused_on_the_sandbox_socket(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    channel = await open_unix_channel(str(stack.runtime / "run" / "guardian.sock"))
    channel.send([0, 1, "hello", {"protocol_version": 1, "client": "sandbox"}])
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(channel.receive(), 5)
    channel.close()
    assert "refused a sandbox connection from uid 0" in stack.logs()


@needs_two_uids
def test_an_env_file_the_sandbox_could_read_is_refused(stack_factory: Callable[..., Stack]) -> None:
    def readable_env_file(stack: Stack) -> None:
        _secret_env_file(stack.dir).chmod(0o644)

    stack = stack_factory(before_start=readable_env_file, wait=False)
    env_file = stack.dir / ".env"
    assert stack.process is not None
    assert stack.process.wait(timeout=30) == 78
    logs = stack.logs()
    assert f"{env_file} is readable by the sandbox user hub-sandbox" in logs
    assert "chmod 0600" in logs
    assert FAKE_SECRET not in logs


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[HUB]\nname = "x"\n', ".pyfun:1: [HUB] is never closed"),
        ("[HUB]\nname = x\n[HUB_END]\n", ".pyfun:2: values must be quoted"),
        ("[HUB]\n[HUB_END]\n[HUB]\n[HUB_END]\n", ".pyfun:3: duplicate section [HUB]"),
    ],
)
def test_bad_config_stops_the_supervisor_with_file_and_line(
    stack_factory: Callable[..., Stack], text: str, where: str
) -> None:
    stack = stack_factory(config_text=text, wait=False, single_uid=True)
    assert stack.process is not None
    assert stack.process.wait(timeout=30) == 78
    assert where in stack.logs()


@needs_two_uids
def test_run_as_a_normal_user_both_share_its_uid_and_it_says_so() -> None:
    other = ensure_user("hub-test-other")
    stack = Stack(single_uid=False)
    try:
        os.chown(stack.dir, other.uid, other.gid)
        for path in stack.dir.iterdir():
            os.chown(path, other.uid, other.gid)
        log = stack.log_path.open("ab")
        stack.process = subprocess.Popen(
            [sys.executable, str(ROOT / "supervisor.py")],
            env=stack.env,
            cwd=stack.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=other.uid,
            group=other.gid,
            extra_groups=[],
        )
        log.close()
        stack.wait_healthy()
        logs = stack.logs()
        assert f"the guardian and the sandbox share uid {other.uid}" in logs
        for name in ("guardian", "sandbox"):
            assert uid_of(stack.pid_of(name)) == other.uid
        assert stack.stop() == 0
    finally:
        stack.cleanup()
