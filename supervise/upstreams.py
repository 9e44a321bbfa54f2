"""Root mode: stdio upstream MCP servers under a uid of their own, started here, their pipes
handed to the guardian.

The guardian runs as an unprivileged user and cannot start a program as another; the
supervisor can. Before each start of the guardian it makes a socket pair and lets the guardian
inherit one end (`HUB_UPSTREAM_LAUNCHER_FD`). There the guardian asks
`{"op": "start", "name", "env", "id"}`: this reads the server's `[MCP_SERVER]` block from
.pyfun itself (a guardian names a configured stdio server, never a program), keeps of `env`
only the variables the block names, starts `sandbox/upstream_jail.py` with the block's rules
under the upstream user (`hub-upstream`, or HUB_UPSTREAM_USER; created on first use, like the
service users), and answers with the program's stdin, stdout and stderr (SCM_RIGHTS). So the
program can read neither the guardian's files nor the sandbox's, whatever Landlock does.

A start under a name ends the program started under it before; `{"op": "stop", "name"}` ends
one; all end when the guardian's end closes (it died or stopped). Restarts and their backoff
are the guardian's, which asks again; the sandbox has no end of this socket.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protocol.pyfun import McpServerConfig, PyfunError, parse, with_env_overrides
from protocol.upstream_launch import LAUNCHER_FD_VARIABLE, jail_argv, kept_variables
from supervise.outcomes import Refusal
from supervise.users import Identity, check_code_readable, ensure_user

logger = logging.getLogger("sealgate.supervisor")

MAX_REQUEST = 1024 * 1024
STOP_GRACE_S = 1.0


class UpstreamLauncher:
    def __init__(self, config_path: Path, environ: Mapping[str, str]) -> None:
        self.config_path = config_path
        self.environ = dict(environ)
        self.user_name = environ.get("HUB_UPSTREAM_USER", "hub-upstream")
        self.identity: Identity | None = None
        self.programs: dict[str, subprocess.Popen[bytes]] = {}
        self._ours: socket.socket | None = None
        self._theirs: socket.socket | None = None

    # the guardian's end ------------------------------------------------------------------------
    def hand_out(self, env: dict[str, str]) -> tuple[int, ...]:
        """A new socket pair for a guardian about to start: its end's number goes in `env`;
        answers the descriptors it must inherit. The programs of the guardian before end."""
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self._ours, self._theirs = ours, theirs
        env[LAUNCHER_FD_VARIABLE] = str(theirs.fileno())
        return (theirs.fileno(),)

    def handed(self) -> None:
        """The guardian started with its end: ours of it is closed, so its death is seen."""
        if self._theirs is not None:
            self._theirs.close()
            self._theirs = None

    def close(self) -> None:
        self.stop_all()
        for sock in (self._ours, self._theirs):
            if sock is not None:
                sock.close()
        self._ours = self._theirs = None

    def pids(self) -> set[int]:
        return {p.pid for p in self.programs.values() if p.poll() is None}

    # requests ----------------------------------------------------------------------------------
    def serve(self) -> None:
        """Answer every request waiting; never blocks."""
        while self._ours is not None:
            try:
                data = self._ours.recv(MAX_REQUEST)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the guardian is gone: so are its programs
                self.close()
                return
            reply, fds = self._handle(data)
            try:
                socket.send_fds(self._ours, [json.dumps(reply).encode()], fds)
            except OSError as exc:
                logger.warning("could not answer the guardian's launcher request: %s", exc)
            finally:
                for fd in fds:
                    os.close(fd)

    def _handle(self, data: bytes) -> tuple[dict[str, Any], list[int]]:
        try:
            request = json.loads(data)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            return {"ok": False, "error": "malformed request"}, []
        ident, name, op = request.get("id"), request.get("name"), request.get("op")
        if not isinstance(name, str):
            return {"id": ident, "ok": False, "error": "no server named"}, []
        if op == "stop":
            self.stop(name)
            return {"id": ident, "ok": True}, []
        if op != "start":
            return {"id": ident, "ok": False, "error": "unknown op"}, []
        env = request.get("env")
        try:
            pid, fds = self.start(name, env if isinstance(env, dict) else {})
        except (Refusal, PyfunError, OSError, subprocess.SubprocessError) as exc:
            logger.error("upstream MCP server %s not started: %s", name, exc)
            return {"id": ident, "ok": False, "error": str(exc)[:500]}, []
        return {"id": ident, "ok": True, "pid": pid}, fds

    def _block(self, name: str) -> McpServerConfig:
        text = self.config_path.read_text(encoding="utf-8")
        config = with_env_overrides(parse(text, str(self.config_path)), self.environ)
        block = config.mcp_servers.get(name)
        if block is None or block.transport != "stdio":
            raise Refusal(f"no stdio upstream MCP server {name!r} is configured")
        return block

    def _user(self) -> Identity:
        if self.identity is None:
            identity = ensure_user(self.user_name)
            check_code_readable(identity, sys.executable)
            self.identity = identity
            logger.info(
                "stdio upstream MCP servers run as %s (uid %d)", identity.name, identity.uid
            )
        return self.identity

    def start(self, name: str, offered: dict[Any, Any]) -> tuple[int, list[int]]:
        """Start the block's program under the upstream user; answers its pid and our ends
        of its stdin, stdout and stderr."""
        block = self._block(name)
        identity = self._user()
        keep = kept_variables(block)
        env = {k: v for k, v in offered.items() if k in keep and isinstance(v, str)}
        self.stop(name)
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            process = subprocess.Popen(
                jail_argv(block, sys.executable),
                stdin=stdin_r,
                stdout=stdout_w,
                stderr=stderr_w,
                env=env,
                cwd="/",
                umask=0o077,
                process_group=0,
                user=identity.uid,
                group=identity.gid,
                extra_groups=[],
            )
        except BaseException:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
        self.programs[name] = process
        logger.info(
            "upstream MCP server %s started (pid %d, uid %d)", name, process.pid, identity.uid
        )
        return process.pid, [stdin_w, stdout_r, stderr_r]

    # ending ------------------------------------------------------------------------------------
    def stop(self, name: str) -> None:
        process = self.programs.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logger.info("upstream MCP server %s stopped (pid %d)", name, process.pid)

    def stop_all(self) -> None:
        for name in list(self.programs):
            self.stop(name)

    def reap(self) -> None:
        """Forget programs that exited (the guardian saw their pipes close)."""
        for name, process in list(self.programs.items()):
            status = process.poll()
            if status is not None:
                del self.programs[name]
                logger.info("upstream MCP server %s exited (status %d)", name, status)
