"""One upstream MCP server: a session kept open by the guardian, restarted with backoff.

The guardian is the upstream's only client. For a URL it connects with the credential its block
names (a bearer token or a header of the block's choosing) and the block's extra headers; for a
`command` it starts the program through `sandbox/upstream_jail.py` (exactly the variables the
block names, nothing of the guardian's) and speaks MCP on its stdin and stdout. A session that
fails (the program exited, the server went away, a ping went unanswered) is closed and opened
again after a backoff that doubles up to `BACKOFF_MAX_S`; calls meanwhile answer a typed
`unavailable` at once, and the other servers are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    Implementation,
    Tool,
    ToolListChangedNotification,
)

from guardian.redact import Redactor
from guardian.secrets import Secrets
from guardian.upstream.launcher import Launcher, handed_pipes
from protocol import __version__
from protocol.errors import ProviderError, Timeout, UpstreamUnavailable
from protocol.pyfun import McpServerConfig
from protocol.upstream_launch import jail_argv, kept_variables

logger = logging.getLogger("sealgate.guardian.upstream")

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
#: A session alive this long resets the backoff.
HEALTHY_RUN_S = 60.0
PING_EVERY_S = 15.0
#: A listing is fetched again after this long (and at once on `tools/list_changed`).
LIST_TTL_S = 5.0
MAX_LIST_PAGES = 20
CLIENT_INFO = Implementation(name="sealgate-guardian", version=__version__)


class Connection:
    """The session to one server, and what is known of it for `mcp list` and `status`."""

    def __init__(
        self,
        config: McpServerConfig,
        secrets: Secrets,
        redactor: Redactor,
        launcher: Launcher | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        #: Told when what this server lists may have changed (the served-tools watch).
        self._on_change = on_change or (lambda: None)
        #: Root mode: the supervisor starts stdio programs under their own uid.
        self._launcher = launcher
        self._secrets = secrets
        self._redactor = redactor
        self.state = "starting"
        self.last_error = ""
        self.restarts = 0
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._stopping = False
        self._tools: list[Tool] | None = None
        self._listed_at = 0.0
        self._list_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mcp-upstream-{self.config.name}"
        )

    async def stop(self) -> None:
        """Close the session (a stdio program is ended with it) and stop restarting."""
        self._stopping = True
        self._broken.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.state = "stopped"

    async def _run(self) -> None:
        delay = BACKOFF_INITIAL_S
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # anyio raises exception groups
                self.last_error = self._describe(exc)
                logger.warning("upstream MCP server %s: %s", self.config.name, self.last_error)
            finally:
                self._client = None
                self._ready.clear()
                self._tools = None
            if self._stopping:
                return
            self.state = "down"
            self._on_change()
            self.restarts += 1
            if time.monotonic() - started >= HEALTHY_RUN_S:
                delay = BACKOFF_INITIAL_S
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _session(self) -> None:
        self._broken.clear()
        async with contextlib.AsyncExitStack() as stack:
            transport = await self._transport(stack)
            client = Client(
                transport,
                mode="legacy",
                cache=None,
                client_info=CLIENT_INFO,
                read_timeout_seconds=self.config.timeout_sec,
                message_handler=self._on_message,
            )
            async with asyncio.timeout(self.config.connect_timeout_sec):
                await stack.enter_async_context(client)
            self._client = client
            self.state = "ready"
            self.last_error = ""
            self._ready.set()
            self._on_change()
            logger.info("upstream MCP server %s connected", self.config.name)
            while not self._broken.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._broken.wait(), PING_EVERY_S)
                    break
                async with asyncio.timeout(self.config.connect_timeout_sec):
                    await client.send_ping()
            if not self._stopping:
                raise ConnectionError(self.last_error or "the session ended")

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        config = self.config
        if config.transport == "stdio":
            env = {
                name: value
                for name in kept_variables(config)
                if (value := self._secrets.get(name)) is not None
            }
            if self._launcher is not None:  # root mode: the supervisor starts it
                handed = await self._launcher.start(config.name, env)
                stack.push_async_callback(self._launcher.stop, config.name)
                await self._relay_stderr(stack, handed.stderr)
                return handed_pipes(handed.stdin, handed.stdout)
            python, *args = jail_argv(config, sys.executable)
            params = StdioServerParameters(command=python, args=args, env=env)
            return stdio_client(params, errlog=await self._stderr(stack))
        headers = dict(config.headers)
        key = self._secrets.get(config.env_key) if config.env_key else None
        if key:
            headers[config.auth_header] = f"Bearer {key}" if config.auth == "bearer" else key
        if config.transport == "sse":
            return sse_client(config.url, headers=headers, timeout=config.connect_timeout_sec)
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=headers,
                timeout=httpx2.Timeout(config.timeout_sec, connect=config.connect_timeout_sec),
                follow_redirects=False,
                trust_env=False,
            )
        )
        return streamable_http_client(config.url, http_client=http)

    async def _stderr(self, stack: contextlib.AsyncExitStack) -> Any:
        """A pipe for the program's stderr, read line by line into the guardian's log,
        redacted (its own key may be in what it prints)."""
        read_fd, write_fd = os.pipe()
        errlog = os.fdopen(write_fd, "w")
        stack.callback(errlog.close)
        await self._relay_stderr(stack, read_fd)
        return errlog

    async def _relay_stderr(self, stack: contextlib.AsyncExitStack, read_fd: int) -> None:
        """Log what the program writes to `read_fd` (its stderr), line by line, redacted."""
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(read_fd, "rb")
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        name, redactor = self.config.name, self._redactor

        async def relay() -> None:
            while line := await reader.readline():
                text = line.decode(errors="replace").rstrip()
                if text:
                    logger.info("upstream %s: %s", name, redactor.redact_and_cut(text, 500))

        task = loop.create_task(relay())

        async def closed() -> None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 1.0)
            transport.close()

        stack.push_async_callback(closed)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, ToolListChangedNotification):
            self._listed_at = 0.0
            self._on_change()
        elif isinstance(message, Exception):
            self.last_error = self._describe(message)
            self._broken.set()

    def _describe(self, exc: BaseException) -> str:
        """The first real error of a (possibly nested) group, redacted and cut."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self._redactor.redact_and_cut(text, 240)

    # use ------------------------------------------------------------------------------------
    async def _connected(self, timeout: float) -> Client:
        if self._client is None:
            if self.state == "down" or timeout <= 0:
                raise UpstreamUnavailable.of(
                    self.config.name, f"upstream MCP server {self.config.name!r} is not connected"
                )
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                raise UpstreamUnavailable.of(
                    self.config.name,
                    f"upstream MCP server {self.config.name!r} did not connect in time",
                ) from None
        client = self._client
        if client is None:
            raise UpstreamUnavailable.of(
                self.config.name, f"upstream MCP server {self.config.name!r} is not connected"
            )
        return client

    async def tools(self, wait_s: float) -> list[Tool]:
        """The server's tools as it lists them now (fetched again after `LIST_TTL_S`)."""
        async with self._list_lock:
            fresh = time.monotonic() - self._listed_at < LIST_TTL_S
            if self._tools is not None and fresh:
                return self._tools
            client = await self._connected(wait_s)
            tools: list[Tool] = []
            cursor: str | None = None
            try:
                async with asyncio.timeout(self.config.timeout_sec):
                    for _ in range(MAX_LIST_PAGES):
                        page = await client.list_tools(cursor=cursor)
                        tools.extend(page.tools)
                        cursor = page.next_cursor
                        if cursor is None:
                            break
            except TimeoutError:
                raise Timeout(
                    f"upstream MCP server {self.config.name!r} did not list its tools in"
                    f" {self.config.timeout_sec:g} s"
                ) from None
            except MCPError as exc:
                raise self._refused(exc) from None
            except Exception as exc:
                raise self._lost(exc) from None
            self._tools, self._listed_at = tools, time.monotonic()
            return tools

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> CallToolResult:
        client = await self._connected(min(timeout, self.config.connect_timeout_sec))
        try:
            async with asyncio.timeout(timeout):
                return await client.call_tool(tool, arguments, read_timeout_seconds=timeout)
        except TimeoutError:
            raise Timeout(
                f"upstream MCP server {self.config.name!r} did not answer {tool!r} in {timeout:g} s"
            ) from None
        except MCPError as exc:
            raise self._refused(exc) from None
        except Exception as exc:
            raise self._lost(exc) from None

    def _refused(self, exc: MCPError) -> ProviderError | Timeout | UpstreamUnavailable:
        if exc.error.code == CONNECTION_CLOSED:
            return self._lost(exc)
        if exc.error.code == REQUEST_TIMEOUT:
            return Timeout(f"upstream MCP server {self.config.name!r} did not answer in time")
        message = self._redactor.redact_and_cut(str(exc.error.message), 240)
        return ProviderError(f"upstream MCP server {self.config.name!r} answered: {message}")

    def _lost(self, exc: BaseException) -> UpstreamUnavailable:
        self.last_error = self._describe(exc)
        self._broken.set()
        return UpstreamUnavailable.of(
            self.config.name, f"upstream MCP server {self.config.name!r} failed: {self.last_error}"
        )
