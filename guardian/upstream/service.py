"""`mcp.list` and `mcp.call` for the sandbox, `mcp.servers|diff|approve` for operators.

A tool is served only when its block offers it (allow or deny list), the caller's role and
token may use the server, and its definition (name, title, description, schemas) has the
digest an operator approved: the pins are read from the database on every listing and every
call, so every guardian sharing the database serves the same tools, and a definition that
changes upstream (a "rug pull") is hidden at once, with an audit event naming the change,
until `sealgate-ctl mcp approve` pins it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from guardian.calls.metering import CallMeter, metered
from guardian.identity.principal import Principal
from guardian.ledger import UsageLedger
from guardian.limits import Limits
from guardian.policy import allows
from guardian.storage import Storage
from guardian.upstream.definitions import (
    Definition,
    canonical,
    changes,
    definition_of,
    digest,
    listing_digest,
    offered,
)
from guardian.upstream.pool import Upstreams
from protocol.contract_upstream import (
    McpApproveResult,
    McpCallParams,
    McpCallResult,
    McpDiffResult,
    McpListResult,
    McpServersResult,
    UpstreamTool,
)
from protocol.errors import Forbidden, InvalidParams, NotFound, ProviderError, RPCError
from protocol.pyfun import McpServerConfig

if TYPE_CHECKING:
    from guardian.upstream.connection import Connection

logger = logging.getLogger("sealgate.guardian.upstream")

#: How long a listing waits for a server that is still connecting.
LIST_WAIT_S = 2.0
#: Room left in an RPC frame for everything around a call's result.
FRAME_MARGIN = 64 * 1024


def may_use(principal: Principal, config: McpServerConfig) -> bool:
    """The block's roles, and for an OAuth token every scope the block names."""
    if principal.kind == "operator":
        return True
    if not allows(config.roles, principal.role.name):
        return False
    return principal.scopes is None or set(config.scopes) <= set(principal.scopes)


class UpstreamService:
    def __init__(
        self, pool: Upstreams, storage: Storage, limits: Limits, ledger: UsageLedger
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.limits = limits
        self.ledger = ledger
        #: (server, tool, digest) already audited as hidden by this guardian
        self._reported: set[tuple[str, str, str]] = set()

    # what is offered and what is approved ----------------------------------------------------
    def _connection(self, config: McpServerConfig) -> Connection:
        connection = self.pool.connection(config.name)
        if connection is None:
            raise NotFound(f"upstream MCP server {config.name!r} is not running")
        return connection

    async def current(self, config: McpServerConfig, wait_s: float) -> dict[str, Definition]:
        """The definitions of the tools the block offers, as the server lists them now."""
        tools = await self._connection(config).tools(wait_s)
        found: dict[str, Definition] = {}
        for tool in tools:
            if offered(config, tool.name):
                found[tool.name] = definition_of(tool)
        return found

    async def approved(
        self, config: McpServerConfig, current: dict[str, Definition], open_loopback: bool
    ) -> dict[str, Definition]:
        """The offered tools whose pin matches (auto-approved first in development mode)."""
        pins = await self.storage.mcp_pins(config.name)
        if config.auto_approve and open_loopback:
            stale = [
                t for t, d in current.items() if t not in pins or pins[t]["digest"] != digest(d)
            ]
            if stale or set(pins) - set(current):
                await self._pin(config.name, current, "auto_approve")
                pins = await self.storage.mcp_pins(config.name)
        served: dict[str, Definition] = {}
        for tool, definition in current.items():
            pin = pins.get(tool)
            if pin is not None and pin["digest"] == digest(definition):
                served[tool] = definition
            else:
                await self._report_hidden(config, tool, definition, pin)
        return served

    async def _report_hidden(
        self, config: McpServerConfig, tool: str, definition: Definition, pin: Any
    ) -> None:
        key = (config.name, tool, digest(definition))
        if key in self._reported:
            return
        self._reported.add(key)
        if pin is None:
            what = "new tool, never approved"
        else:
            approved = json.loads(str(pin["definition"]))
            fields = sorted(k for k in definition if approved.get(k) != definition.get(k))
            what = f"definition changed since approval ({', '.join(fields) or 'digest'})"
        detail = (
            f"{config.name}/{tool}: {what}; hidden until `sealgate-ctl mcp approve {config.name}`"
        )
        logger.warning("upstream MCP tool %s", detail)
        await self.storage.add_audit(
            "guardian", "mcp.pin", "hidden", "", detail, config.prefix + tool
        )

    async def _pin(self, server: str, current: dict[str, Definition], by: str) -> None:
        pins = {tool: (digest(d), canonical(d)) for tool, d in current.items()}
        await self.storage.set_mcp_pins(server, pins, by)
        self._reported = {r for r in self._reported if r[0] != server}
        self.pool.changed.set()  # the watch (`guardian.upstream.watch`) looks at once

    async def served_digests(self, config: McpServerConfig) -> frozenset[tuple[str, str]]:
        """(tool, digest) of every tool the server serves now: offered, listed and pinned
        as it is. Nothing is audited or pinned here; a server not reachable serves none."""
        try:
            current = await self.current(config, 0)
        except RPCError:
            return frozenset()
        pins = await self.storage.mcp_pins(config.name)
        return frozenset(
            (tool, digest(d))
            for tool, d in current.items()
            if tool in pins and pins[tool]["digest"] == digest(d)
        )

    # the sandbox's sealed calls ----------------------------------------------------------------
    async def list_for(self, principal: Principal, open_loopback: bool) -> McpListResult:
        """Every server the caller may use, asked at once: a slow or dead one costs the
        listing its own wait at most, and is named in `unavailable`."""
        config_now = self.pool.live.snapshot.config
        usable = [c for _, c in sorted(config_now.mcp_servers.items()) if may_use(principal, c)]
        found = await asyncio.gather(*(self._served(c, open_loopback) for c in usable))
        tools = [tool for served in found if served is not None for tool in served]
        unavailable = [c.name for c, served in zip(usable, found, strict=True) if served is None]
        return McpListResult(tools=tools, unavailable=unavailable)

    async def _served(
        self, config: McpServerConfig, open_loopback: bool
    ) -> list[UpstreamTool] | None:
        try:
            current = await self.current(config, min(LIST_WAIT_S, config.connect_timeout_sec))
        except RPCError:
            return None
        approved = await self.approved(config, current, open_loopback)
        return [_listed(config, tool, definition) for tool, definition in sorted(approved.items())]

    async def call(
        self, principal: Principal, params: McpCallParams, open_loopback: bool
    ) -> McpCallResult:
        snapshot = self.pool.live.snapshot
        config = snapshot.config.mcp_servers.get(params.server)
        if config is None:
            raise NotFound(f"no upstream MCP server {params.server!r} is configured")
        if not may_use(principal, config):
            raise Forbidden(
                f"role {principal.role.name!r} may not use upstream MCP server {config.name!r}"
                + (
                    f" (a token needs the scopes {', '.join(config.scopes)})"
                    if principal.scopes is not None
                    else ""
                )
            )
        tool, name = params.tool, config.prefix + params.tool
        if not offered(config, tool):
            raise NotFound(f"upstream MCP server {config.name!r} serves no tool {tool!r}")
        current = await self.current(config, config.connect_timeout_sec)
        if tool not in current:
            raise NotFound(f"upstream MCP server {config.name!r} lists no tool {tool!r}")
        if tool not in await self.approved(config, current, open_loopback):
            raise Forbidden(
                f"tool {name!r} is hidden: its definition is not approved (sealgate-ctl mcp diff"
                f" {config.name})"
            )
        await self._admit(principal)
        meter = CallMeter(
            ledger=self.ledger,
            limits=self.limits,
            principal=principal.name,
            user_id=principal.user_id,
            tool=name,
            action="mcp.call",
            ip=params.caller.ip,
        )
        meter.reservation = await self.limits.reserve(
            principal.name,
            None,
            0.0,
            user_id=principal.user_id,
            tool=name,
            provider=config.name,
            model="",
        )
        path: list[dict[str, str]] = []
        redactor = self.pool.live.redactor
        started = time.monotonic()
        limit = snapshot.config.hub.max_frame_size - FRAME_MARGIN

        async def work() -> McpCallResult:
            meter.begin(config.name, "", None, 0, 0)
            connection = self._connection(config)
            try:
                answer = await connection.call(
                    tool, dict(params.arguments or {}), config.timeout_sec
                )
            except RPCError as exc:
                self.pool.count(config.name, tool, _ms(started), True)
                path.append({"provider": config.name, "error": exc.message})
                raise
            latency = _ms(started)
            self.pool.count(config.name, tool, latency, bool(answer.is_error))
            data = answer.model_dump(mode="json", by_alias=True, exclude_none=True)
            content = _redacted(data.get("content") or [], redactor)
            structured = data.get("structuredContent")
            result = McpCallResult(
                content=content,
                is_error=bool(answer.is_error),
                latency_ms=latency,
                **(
                    {"structured_content": _redacted(structured, redactor)}
                    if isinstance(structured, dict)
                    else {}
                ),
            )
            if len(json.dumps(content)) + len(json.dumps(structured or {})) > limit:
                raise ProviderError(f"upstream tool {name!r} answered more than {limit} bytes")
            meter.succeed(0, 0, path)
            return result

        return await metered(meter, path, work(), redactor)

    async def _admit(self, principal: Principal) -> None:
        """The caller's own rate and budget, as for any sealed call (no cost is added)."""
        role = principal.role
        if role.requests_per_min:
            await self.limits.hit(
                f"principal:{principal.key}", role.requests_per_min, f"principal {principal.name}"
            )
        if role.monthly_budget_usd is not None:
            await self.limits.check_budget(principal.key, role.monthly_budget_usd)

    # operators ---------------------------------------------------------------------------------
    def _configured(self, name: str) -> McpServerConfig:
        config = self.pool.live.snapshot.config.mcp_servers.get(name)
        if config is None:
            raise NotFound(f"no upstream MCP server {name!r} is configured")
        return config

    async def _current_for_operator(self, config: McpServerConfig) -> dict[str, Definition]:
        """The listing, waiting for a server still connecting; an unreachable one answers
        `UpstreamUnavailable` (`unavailable` naming it in `data.upstream`)."""
        return await self.current(config, config.connect_timeout_sec)

    async def servers(self) -> McpServersResult:
        rows: list[dict[str, Any]] = []
        for name, config in sorted(self.pool.live.snapshot.config.mcp_servers.items()):
            connection = self.pool.connection(name)
            row: dict[str, Any] = {
                "name": name,
                "transport": config.transport,
                "target": config.url or config.command[0],
                "state": connection.state if connection else "not running",
                "restarts": connection.restarts if connection else 0,
                "last_error": connection.last_error if connection else "",
                "auto_approve": config.auto_approve,
                "tools": self.pool.tool_figures(name),
            }
            try:
                current = await self.current(config, 0)
                pins = await self.storage.mcp_pins(name)
                waiting = changes({t: (str(p["digest"]), None) for t, p in pins.items()}, current)
                row["served"] = sum(
                    1 for t, d in current.items() if t in pins and pins[t]["digest"] == digest(d)
                )
                row["waiting"] = sorted(c["tool"] for c in waiting if c["change"] != "removed")
            except RPCError as exc:
                row["served"], row["waiting"] = 0, []
                row["last_error"] = row["last_error"] or exc.message
            rows.append(row)
        return McpServersResult(servers=rows)

    async def diff(self, name: str) -> McpDiffResult:
        config = self._configured(name)
        current = await self._current_for_operator(config)
        pins = await self.storage.mcp_pins(name)
        pinned = {t: (str(p["digest"]), json.loads(str(p["definition"]))) for t, p in pins.items()}
        return McpDiffResult(
            server=name, listing=listing_digest(current), changes=changes(pinned, current)
        )

    async def approve(self, name: str, expect: str | None = None) -> McpApproveResult:
        config = self._configured(name)
        current = await self._current_for_operator(config)
        if expect is not None and listing_digest(current) != expect:
            raise InvalidParams(
                f"upstream MCP server {name!r} lists other tool definitions than the diff you"
                " saw: nothing was approved; run `sealgate-ctl mcp diff` again"
            )
        before = await self.storage.mcp_pins(name)
        await self._pin(name, current, "operator")
        removed = sorted(set(before) - set(current))
        await self.storage.add_audit(
            "operator", "mcp.approve", "ok", "", f"{name}: {len(current)} tool(s) pinned", ""
        )
        return McpApproveResult(server=name, approved=sorted(current), removed=removed)


def _listed(config: McpServerConfig, tool: str, definition: Definition) -> UpstreamTool:
    extra: dict[str, Any] = {}
    if definition.get("title"):
        extra["title"] = definition["title"]
    if definition.get("output_schema"):
        extra["output_schema"] = definition["output_schema"]
    return UpstreamTool(
        name=config.prefix + tool,
        server=config.name,
        tool=tool,
        description=definition.get("description") or "",
        input_schema=definition.get("input_schema") or {"type": "object"},
        **extra,
    )


def _redacted(value: Any, redactor: Any) -> Any:
    """Every string in an answer with the guardian's secrets cut out."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [_redacted(item, redactor) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item, redactor) for key, item in value.items()}
    return value


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
