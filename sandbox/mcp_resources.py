"""MCP resources: read-only JSON a client can show or attach.

- `sealgate://models`: the model catalog (the guardian's `models.info`, as the caller's role
  sees it), and the template `sealgate://models/{id}` for one model's limits and costs;
- `sealgate://usage/me`: the caller's own usage and budget this month (`usage.mine`: the
  guardian resolves whose from the credential);
- `sealgate://status`: the hub's status, from the guardian's `health` and the sandbox's own
  state (never from the admin socket).

Every read carries the caller's credential to the guardian, which decides what it may see.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from fastmcp import FastMCP
from fastmcp.exceptions import ResourceError
from fastmcp.resources import Resource, ResourceTemplate
from mcp_types import Annotations

from protocol import __version__
from protocol.contract_results import to_wire
from protocol.errors import RPCError
from sandbox.guardian_link import Caller, GuardianLink
from sandbox.mcp_describe import ICONS

JSON = "application/json"
MODELS = "sealgate://models"
MODEL = "sealgate://models/{id}"
USAGE = "sealgate://usage/me"
STATUS = "sealgate://status"
#: Resources a client may attach for the model to read, or show to the person.
FOR_BOTH = Annotations(audience=["user", "assistant"])


def as_json(data: Any) -> str:
    return msgspec.json.encode(data).decode()


def refused(exc: RPCError) -> ResourceError:
    """The guardian's typed refusal, in words (`not_found: unknown model 'x'`)."""
    return ResourceError(f"{exc.code.value}: {exc.message}")


class SealGateResources:
    """The resources of one MCP server, read through one guardian link."""

    def __init__(
        self,
        link: GuardianLink,
        caller: Callable[[], Caller],
        sandbox_state: Callable[[], dict[str, Any]],
    ) -> None:
        self.link = link
        self.caller = caller
        self.sandbox_state = sandbox_state

    def register(self, mcp: FastMCP) -> None:
        def add(uri: str, read: Callable[[], Awaitable[str]], title: str, about: str) -> None:
            mcp.add_resource(
                Resource.from_function(
                    read,
                    uri=uri,
                    name=uri.removeprefix("sealgate://").replace("/", "_"),
                    title=title,
                    description=about,
                    mime_type=JSON,
                    icons=[ICONS["hub"]],
                    annotations=FOR_BOTH,
                )
            )

        add(
            MODELS,
            self.models,
            "Model catalog",
            "The configured models your role may use: provider, limits, costs, capabilities.",
        )
        add(
            USAGE,
            self.usage,
            "My usage",
            "Your own calls, tokens and cost this month, and what is left of your budget.",
        )
        add(
            STATUS,
            self.status,
            "Hub status",
            "Whether the gateway and its guardian answer; versions, uptime, active providers.",
        )
        mcp.add_template(
            ResourceTemplate.from_function(
                self.model,
                uri_template=MODEL,
                name="model",
                title="Model",
                description="One model's limits, costs and capabilities.",
                mime_type=JSON,
                icons=[ICONS["hub"]],
                annotations=FOR_BOTH,
            )
        )

    async def models(self) -> str:
        try:
            return as_json(to_wire(await self.link.models_info(self.caller())))
        except RPCError as exc:
            raise refused(exc) from None

    async def model(self, id: str) -> str:
        try:
            info = await self.link.models_info(self.caller(), id)
        except RPCError as exc:
            raise refused(exc) from None
        if not info.models:
            raise ResourceError(f"not_found: no model '{id}' is configured")
        return as_json(info.models[0])

    async def usage(self) -> str:
        try:
            return as_json(to_wire(await self.link.usage_mine(self.caller())))
        except RPCError as exc:
            raise refused(exc) from None

    async def status(self) -> str:
        """The sandbox always answers; the guardian's part says why it is missing."""
        state: dict[str, Any] = {"sandbox_version": __version__, **self.sandbox_state()}
        try:
            health = await self.link.health(timeout=5.0)
        except RPCError as exc:
            state["status"] = "degraded"
            state["guardian"] = {"status": "unreachable", "error": exc.message}
        else:
            state["status"] = "ok" if health.status == "ok" else "degraded"
            state["guardian"] = {
                "status": health.status,
                "version": health.version,
                "uptime_s": health.uptime_s,
            }
        return as_json(state)
