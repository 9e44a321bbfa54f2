"""Upstream MCP servers (docs/UPSTREAM_MCP.md), attacked from a compromised sandbox.

The stack runs with one uid, so this test process is the sandbox's uid and holds
guardian.sock as the sandbox does. The upstream's credential (a canary) must never reach the
sandbox: not in its environment or command line, not in any process's command line, not in
an RPC reply or an error; no method takes a URL; a tool whose definition is not approved, or
a server the caller's role may not use, is refused by the guardian itself; and a stdio
upstream, under the same uid as the guardian, cannot read the guardian's env file nor connect
to its sockets."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import Forbidden, InvalidParams, NotFound, RPCError
from tests.e2e.mcp_client import mcp_session
from tests.e2e.test_reload import ctl
from tests.helpers import Stack, children_of, cmdline, two_uid_possible
from tests.security.common import caller, issue_token, sandbox_client
from tests.upstream_mcp import (
    CANARY,
    config_text,
    description_file,
    http_upstream,
    silent_listener,
    write_env_file,
)

ADMIN_ONLY = """[MCP_SERVER.vault]
url = "http://127.0.0.1:{port}/mcp"
allow_insecure = "true"
env_key = "FAKE_UPSTREAM_KEY"
prefix = "vault_"
roles = "admin"
[MCP_SERVER.vault_END]
"""


def _cmdlines() -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


async def test_a_compromised_sandbox_never_sees_the_upstream_credential(
    stack_factory: Callable[..., Stack],
) -> None:
    with (
        description_file() as described,
        http_upstream(described) as port,
        silent_listener() as dead,
    ):
        text = config_text(port, dead, described, extra=ADMIN_ONLY.format(port=port))
        stack = stack_factory(
            single_uid=True,
            config_text=text,
            before_start=lambda s: write_env_file(s.dir, described),
        )
        user = issue_token(stack, "mallory", "user")
        admin = issue_token(stack, "ada", "admin")
        rpc = await sandbox_client(stack)
        try:
            replies = await _attack(stack, rpc, user, admin, port)
        finally:
            await rpc.close()
        # nothing the sandbox was sent, and no process's command line, holds the canary
        assert CANARY not in replies
        for pid, line in _cmdlines().items():
            assert CANARY.encode() not in line, pid
        sandbox = stack.pid_of("sandbox")
        assert CANARY.encode() not in Path(f"/proc/{sandbox}/environ").read_bytes()
        assert CANARY not in stack.logs()


async def _attack(stack: Stack, rpc: Any, user: str, admin: str, port: int) -> str:
    """Every reply and error the sandbox gets, as one text."""
    seen: list[str] = []

    async def ask(method: str, params: dict[str, Any]) -> Any:
        try:
            answer = await rpc.call(method, params)
        except RPCError as exc:
            seen.append(json.dumps(exc.to_wire()))
            raise
        seen.append(json.dumps(answer))
        return answer

    # not approved yet: listed nowhere, and refused by the guardian when called anyway
    await _until_connected(stack)
    listed = await ask("mcp.list", {"caller": caller(user)})
    assert listed["tools"] == []
    with pytest.raises(Forbidden):
        await ask("mcp.call", {"caller": caller(user), "server": "web", "tool": "leak"})
    for server in ("web", "local", "vault"):
        assert ctl(stack, "mcp", "approve", server).returncode == 0

    listed = await ask("mcp.list", {"caller": caller(user)})
    names = {tool["name"] for tool in listed["tools"]}
    assert {"web_leak", "local_leak"} <= names and not any(n.startswith("vault_") for n in names)
    # the listing names servers and tools, never where they are or how they start
    text = json.dumps(listed)
    assert f"127.0.0.1:{port}" not in text and "upstream_mcp.py" not in text

    # the role decides, in the guardian: a user may not use the admins' server
    with pytest.raises(Forbidden):
        await ask("mcp.call", {"caller": caller(user), "server": "vault", "tool": "echo"})
    vault = {
        "caller": caller(admin),
        "server": "vault",
        "tool": "add",
        "arguments": {"a": 1, "b": 2},
    }
    assert (await ask("mcp.call", vault))["content"][0]["text"] == "3"

    # answers that carry the credential are redacted, on both transports
    for server in ("web", "local"):
        answer = await ask("mcp.call", {"caller": caller(user), "server": server, "tool": "leak"})
        assert "my key is" in answer["content"][0]["text"]

    # no method takes a URL, a command or a header; names are names
    for extra in ({"url": "http://127.0.0.1:1/"}, {"command": "sh"}, {"headers": {"a": "b"}}):
        with pytest.raises(InvalidParams):
            await ask(
                "mcp.call", {"caller": caller(user), "server": "web", "tool": "echo", **extra}
            )
    for server in ("http://127.0.0.1:1/mcp", "../web", "nope"):
        with pytest.raises((InvalidParams, NotFound)):
            await ask("mcp.call", {"caller": caller(user), "server": server, "tool": "echo"})

    # a stdio upstream runs under the guardian's uid here, but Landlock keeps its files shut
    env_file = str(stack.dir / ".env")
    read = {"caller": caller(user), "server": "local", "tool": "read_file"}
    answer = await ask("mcp.call", {**read, "arguments": {"path": env_file}})
    assert "cannot read" in answer["content"][0]["text"], answer
    assert os.access(env_file, os.R_OK)  # the probe is sound: this process may read it
    # nor open a Unix socket: Landlock does not stop a connect to a socket file (the admin
    # socket in root mode, guardian.sock here), the seccomp filter does
    sock = str(stack.runtime / "run" / "guardian.sock")
    connect = {"caller": caller(user), "server": "local", "tool": "connect_unix"}
    answer = await ask("mcp.call", {**connect, "arguments": {"path": sock}})
    assert "cannot connect" in answer["content"][0]["text"], answer
    return "\n".join(seen)


async def _until_connected(stack: Stack) -> None:
    deadline = time.monotonic() + 20
    while True:
        rows = json.loads(ctl(stack, "mcp", "list", "--json").stdout)["servers"]
        if {r["name"] for r in rows if r["state"] == "ready"} >= {"web", "local", "vault"}:
            return
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.3)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _programs_below(pid: int) -> list[int]:
    return [p for p in children_of(pid) if "upstream_mcp.py" in cmdline(p)]


async def test_in_root_mode_a_stdio_upstream_runs_under_its_own_uid_started_by_the_supervisor(
    stack_factory: Callable[..., Stack],
) -> None:
    """Root mode: the supervisor starts the stdio program under the upstream user and hands
    the guardian its pipes. Its uid is neither the guardian's nor the sandbox's; it cannot
    read the guardian's env file or state; killed, it is started again (the guardian asks
    the supervisor, after its backoff) under that uid again."""
    reason = two_uid_possible()
    if reason is not None:
        pytest.skip(reason)
    with (
        description_file() as described,
        http_upstream(described) as port,
        silent_listener() as dead,
    ):
        stack = stack_factory(
            single_uid=False,
            config_text=config_text(port, dead, described),
            before_start=lambda s: write_env_file(s.dir, described),
        )
        assert stack.process is not None
        supervisor, guardian = stack.process.pid, stack.pid_of("guardian")
        sandbox = stack.pid_of("sandbox")
        user = issue_token(stack, "mallory", "user")
        rows: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while not any(r["name"] == "local" and r["state"] == "ready" for r in rows):
            assert time.monotonic() < deadline, rows
            await asyncio.sleep(0.3)
            rows = json.loads(ctl(stack, "mcp", "list", "--json").stdout)["servers"]
        assert ctl(stack, "mcp", "approve", "local").returncode == 0

        # the supervisor's child, not the guardian's, under the upstream user
        (program,) = _programs_below(supervisor)
        assert not _programs_below(guardian)
        upstream_uid = pwd.getpwnam("hub-upstream").pw_uid
        assert _uid_of(program) == upstream_uid
        assert upstream_uid not in (_uid_of(guardian), _uid_of(sandbox))

        headers = {"Authorization": f"Bearer {user}"}

        async def call(tool: str, arguments: dict[str, Any] | None = None) -> Any:
            async with mcp_session(stack.url, headers=headers) as client:
                return await client.call_tool(f"local_{tool}", arguments or {})

        answer = await call("whoami")
        assert answer.structured_content["uid"] == upstream_uid, answer
        # the guardian's env file and its state: shut by the uid, not only by Landlock
        state = sorted(p for p in (stack.runtime / "guardian").iterdir() if p.is_file())
        for path in [stack.dir / ".env", *state[:3]]:
            answer = await call("read_file", {"path": str(path)})
            assert "cannot read" in answer.content[0].text, (path, answer)
            st = path.stat()
            assert st.st_uid != upstream_uid and not st.st_mode & 0o004, path

        # killed: started again by the supervisor, at the guardian's request
        os.kill(program, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            again = [p for p in _programs_below(supervisor) if p != program]
            if again:
                answer = await call("whoami")
                if not answer.is_error and answer.structured_content["uid"] == upstream_uid:
                    break
            assert time.monotonic() < deadline, "the stdio upstream was not started again"
            await asyncio.sleep(0.3)
        assert _uid_of(again[0]) == upstream_uid and not _programs_below(guardian)
        # nor its guardian: a guardian killed outright, the supervisor ends its programs
        os.kill(guardian, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(again[0]):
            assert time.monotonic() < deadline, "the stdio upstream outlived its guardian"
            await asyncio.sleep(0.1)
        # nor a stopped stack (the restarted guardian's program, if it has one yet)
        left = _programs_below(supervisor)
        stack.stop()
        for pid in left:
            assert not _alive(pid), pid


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
