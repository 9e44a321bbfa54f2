"""What an upstream tool is for pinning: its name, title, description and schemas, and the
SHA-256 of exactly those (what a model reads and what the tool takes and gives)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from protocol.pyfun import McpServerConfig

Definition = dict[str, Any]


def definition_of(tool: Any) -> Definition:
    """A listed `mcp_types.Tool` as the plain map that is pinned and shown by `mcp diff`."""
    return {
        "name": str(tool.name),
        "title": tool.title if isinstance(tool.title, str) else None,
        "description": tool.description if isinstance(tool.description, str) else "",
        "input_schema": dict(tool.input_schema or {}),
        "output_schema": dict(tool.output_schema) if tool.output_schema else None,
    }


def digest(definition: Definition) -> str:
    """SHA-256 over the definition's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(definition: Definition) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def listing_digest(current: dict[str, Definition]) -> str:
    """SHA-256 over a server's whole listing (each tool's digest, by name)."""
    text = json.dumps({tool: digest(d) for tool, d in current.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def offered(config: McpServerConfig, tool: str) -> bool:
    """Whether the block serves `tool` at all (its allow or deny list)."""
    if config.allow_tools:
        return tool in config.allow_tools
    return tool not in config.deny_tools


def changes(
    pins: dict[str, tuple[str, Definition | None]], current: dict[str, Definition]
) -> list[dict[str, Any]]:
    """What `mcp diff` shows: tools new, changed or removed since their approval. `pins` is
    tool -> (digest, approved definition)."""
    found: list[dict[str, Any]] = []
    for tool in sorted(set(pins) | set(current)):
        pinned, now = pins.get(tool), current.get(tool)
        if now is None:
            found.append({"tool": tool, "change": "removed", "approved": pinned and pinned[1]})
        elif pinned is None:
            found.append({"tool": tool, "change": "new", "approved": None, "now": now})
        elif pinned[0] != digest(now):
            fields = sorted(k for k in now if (pinned[1] or {}).get(k) != now.get(k))
            found.append(
                {
                    "tool": tool,
                    "change": "changed",
                    "fields": fields,
                    "approved": pinned[1],
                    "now": now,
                }
            )
    return found
