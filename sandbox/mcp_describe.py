"""What each MCP tool says about itself: a title, truthful annotations, an icon, and an
output schema that its structured content really matches.

The output schemas are generated from msgspec Structs: the contract's typed results where a
tool answers one as it is, and the small Structs below where a tool wraps or extends one. A
tool answer is built from (or is) the same Struct, so the schema cannot drift from it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import msgspec
from mcp_types import Icon, ToolAnnotations
from msgspec import UNSET, UnsetType

from protocol.contract_results import (
    DbQueryResult,
    HealthResult,
    LlmResult,
    ModelsInfoResult,
    SearchResult,
)


# the structured content of the tools that do not answer a contract result as it is --------
class HealthCheckOutput(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """`health_check`: the sandbox's own word and the guardian's `health`."""

    status: str
    sandbox_version: str
    guardian: HealthResult


class ListedModel(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A configured model; `active` when its provider has a key now."""

    id: str
    provider: str
    active: bool


class ListActiveToolsOutput(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """`list_active_tools`: SealGate's names, then the original hub's keys for the same."""

    tools: list[str]
    llm_providers: list[str]
    search_providers: list[str]
    models: list[ListedModel]
    guardian_connected: bool
    #: What each tool takes, so a client can build its form (aliases not listed).
    tool_params: dict[str, list[str]]
    active_tools: list[str]
    active_llm_providers: list[str]
    active_search_providers: list[str]
    available_models: list[str]


class LlmToolOutput(LlmResult, frozen=True, kw_only=True):
    """An LLM tool's answer: the guardian's `LlmResult`, `cached` when the hub's tool cache
    answered it (no provider call, nothing billed)."""

    cached: bool | UnsetType = UNSET


def output_schema(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """A self-contained object schema for `kind`: msgspec's schema with the root `$ref`
    inlined (MCP wants `"type": "object"` at the top); the other `$defs` stay."""
    schema = msgspec.json.schema(kind)
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    root_name = str(schema["$ref"]).rsplit("/", 1)[-1]
    root = dict(defs.pop(root_name))
    if defs:
        root["$defs"] = defs
    return root


# annotations -----------------------------------------------------------------------------
def _annotations(
    *, read_only: bool, idempotent: bool, open_world: bool, title: str
) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False,  # no tool deletes or overwrites anything
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )


def _svg_icon(label: str, colour: str) -> Icon:
    """A small static SVG (no script, no external reference) as a data: URI."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="32" height="32">'
        f'<rect width="32" height="32" rx="6" fill="{colour}"/>'
        '<text x="16" y="21" font-family="sans-serif" font-size="13" text-anchor="middle"'
        f' fill="#fff">{label}</text></svg>'
    )
    data = base64.b64encode(svg.encode()).decode()
    return Icon(src=f"data:image/svg+xml;base64,{data}", mime_type="image/svg+xml", sizes=["any"])


#: One icon per kind of tool; the server's own icon is the hub's.
ICONS = {
    "hub": _svg_icon("SG", "#2f4858"),
    "llm": _svg_icon("AI", "#3a6ea5"),
    "search": _svg_icon("WW", "#2a7f62"),
    "db": _svg_icon("DB", "#8a5a00"),
}


@dataclass(frozen=True, slots=True)
class ToolDescription:
    """Everything a tool declares about itself besides its name, description and inputs."""

    title: str
    annotations: ToolAnnotations
    icon: Icon
    output: type[msgspec.Struct]

    @property
    def schema(self) -> dict[str, Any]:
        return output_schema(self.output)


def _info(title: str, output: type[msgspec.Struct]) -> ToolDescription:
    """A built-in tool that only reads SealGate's own state."""
    notes = _annotations(read_only=True, idempotent=True, open_world=False, title=title)
    return ToolDescription(title, notes, ICONS["hub"], output)


BUILT_IN = {
    "health_check": _info("Health check", HealthCheckOutput),
    "list_active_tools": _info("List active tools", ListActiveToolsOutput),
    "get_model_info": _info("Model info", ModelsInfoResult),
}


def title_of(name: str) -> str:
    """`code_review` -> `Code review`."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def describe_llm(name: str) -> ToolDescription:
    """An LLM tool spends the caller's budget (so it is not read-only), and the same prompt
    may answer differently (not idempotent); it deletes nothing. Its domain is the configured
    providers, not an open world of entities."""
    title = "LLM completion" if name == "llm_complete" else title_of(name)
    notes = _annotations(read_only=False, idempotent=False, open_world=False, title=title)
    return ToolDescription(title, notes, ICONS["llm"], LlmToolOutput)


def describe_search(name: str) -> ToolDescription:
    """A search reaches the open web; each call is a billed request, and the web moves."""
    title = title_of(name)
    notes = _annotations(read_only=False, idempotent=False, open_world=True, title=title)
    return ToolDescription(title, notes, ICONS["search"], SearchResult)


def describe_db() -> ToolDescription:
    """`db_query` runs one read-only SELECT over a closed set of tables."""
    title = "Database query"
    notes = _annotations(read_only=True, idempotent=True, open_world=False, title=title)
    return ToolDescription(title, notes, ICONS["db"], DbQueryResult)
