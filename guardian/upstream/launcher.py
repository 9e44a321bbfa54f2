"""Root mode: stdio upstream MCP servers are started by the supervisor under their own uid,
and the guardian gets their pipes.

The guardian runs as an unprivileged user and cannot start a program under another uid; the
supervisor, root, can (`supervise/upstreams.py`). It gives the guardian one end of a socket
pair (`HUB_UPSTREAM_LAUNCHER_FD`); the guardian asks on it to start a configured stdio server
by name, with the values of the variables its block names, and receives the program's stdin,
stdout and stderr (SCM_RIGHTS). The supervisor takes the command and the rules from .pyfun
itself: the guardian names a server, never a program. `handed_pipes` speaks MCP over those
pipes as the SDK's stdio transport does over a child's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from protocol.errors import UpstreamUnavailable
from protocol.upstream_launch import LAUNCHER_FD_VARIABLE

if TYPE_CHECKING:
    # `mcp` is imported only once a server is configured: importing it loads OpenTelemetry,
    # which the guardian must not load while tracing is off (tests/e2e/test_tracing.py).
    from mcp.shared.message import SessionMessage

logger = logging.getLogger("sealgate.guardian.upstream")

#: How long the supervisor may take to start a program and answer.
LAUNCH_TIMEOUT_S = 15.0
MAX_REPLY = 64 * 1024
#: The longest line (one JSON-RPC message) read from a program.
MAX_LINE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Handed:
    """A started program's pipes (our ends) and its pid."""

    stdin: int
    stdout: int
    stderr: int
    pid: int


class Launcher:
    """The guardian's end of the supervisor's launcher socket; one request at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Launcher | None:
        """The launcher the supervisor handed this guardian, or None (one-uid mode)."""
        value = environ.get(LAUNCHER_FD_VARIABLE, "")
        if not value.isdigit():
            return None
        sock = socket.socket(fileno=int(value))
        sock.set_inheritable(False)  # no program the guardian starts gets it
        sock.settimeout(LAUNCH_TIMEOUT_S)
        return cls(sock)

    async def start(self, name: str, env: dict[str, str]) -> Handed:
        reply, fds = await self._ask({"op": "start", "name": name, "env": env})
        if not reply.get("ok") or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            why = str(reply.get("error") or "no pipes in the answer")[:240]
            raise UpstreamUnavailable.of(
                name, f"upstream MCP server {name!r} was not started: {why}"
            )
        logger.info("upstream MCP server %s started by the supervisor (pid %s)", name, reply["pid"])
        return Handed(fds[0], fds[1], fds[2], int(reply["pid"]))

    async def stop(self, name: str) -> None:
        with contextlib.suppress(Exception):
            _, fds = await self._ask({"op": "stop", "name": name})
            for fd in fds:
                os.close(fd)

    def close(self) -> None:
        self._sock.close()

    async def _ask(self, request: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        async with self._lock:
            request = {**request, "id": next(self._ids)}
            return await asyncio.to_thread(self._exchange, request)

    def _exchange(self, request: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """Send, then read answers until ours (a late one to an abandoned request is
        dropped, its descriptors closed)."""
        try:
            self._sock.send(json.dumps(request).encode())
            while True:
                data, fds, _, _ = socket.recv_fds(self._sock, MAX_REPLY, 3)
                if not data:
                    raise OSError("the supervisor closed the launcher socket")
                reply = json.loads(data)
                if isinstance(reply, dict) and reply.get("id") == request["id"]:
                    return reply, fds
                for fd in fds:
                    os.close(fd)
        except (OSError, ValueError) as exc:
            name = str(request.get("name"))
            raise UpstreamUnavailable.of(
                name, f"upstream MCP server {name!r}: the supervisor did not answer ({exc})"
            ) from None


def _parse(line: bytes) -> SessionMessage | Exception:
    # imported here, like `mcp` everywhere in the guardian: 0.2 s of pydantic models at
    # start-up that only a stdio upstream needs
    import mcp_types
    from mcp.shared.message import SessionMessage

    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


@contextlib.asynccontextmanager
async def handed_pipes(stdin: int, stdout: int) -> AsyncIterator[Any]:
    """MCP's newline-delimited JSON-RPC over a program's stdin and stdout we were handed:
    the (read, write) streams a `Client` takes, like `mcp.client.stdio.stdio_client`'s.
    Leaving closes both pipes (the program sees end of input)."""
    from mcp.shared.message import SessionMessage

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdout, "rb", buffering=0)
    )
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(stdin, "wb", buffering=0)
    )
    incoming_writer, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, outgoing_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def read() -> None:
        async with incoming_writer:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                while line := await reader.readline():
                    if line.strip():
                        await incoming_writer.send(_parse(line))

    async def write() -> None:
        async with outgoing_reader:
            async for message in outgoing_reader:
                text = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                if write_transport.is_closing():
                    break
                write_transport.write(text.encode() + b"\n")
        await incoming_writer.aclose()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            group.start_soon(write)
            try:
                yield incoming, outgoing
            finally:
                group.cancel_scope.cancel()
    finally:
        write_transport.close()
        read_transport.close()
        del write_protocol
