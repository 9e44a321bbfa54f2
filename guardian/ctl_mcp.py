"""`sealgate-ctl mcp list|diff NAME|approve NAME`: upstream MCP servers behind the hub.

`list` shows each server's state (connected, down, its last error), its tools served and
waiting for approval, and calls per tool; `diff` what changed in a server's tool definitions
since they were approved; `approve` pins them as they are now (docs/UPSTREAM_MCP.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from protocol.printable import printable

Call = Callable[[Path, str, dict[str, Any]], Awaitable[Any]]
Emit = Callable[[argparse.Namespace, Any, str], None]
Table = Callable[[list[dict[str, Any]], list[str]], str]


def add_parser(sub: Any) -> None:
    mcp = sub.add_parser("mcp", help="upstream MCP servers behind the hub").add_subparsers(
        dest="action", required=True
    )
    mcp.add_parser("list", help="each server's state, tools served and waiting, calls")
    mcp.add_parser("diff", help="what changed since a server's tools were approved").add_argument(
        "name"
    )
    mcp.add_parser("approve", help="pin a server's tool definitions as they are now").add_argument(
        "name"
    )


async def run(args: argparse.Namespace, path: Path, call: Call, emit: Emit, table: Table) -> None:
    if args.action == "list":
        result = await call(path, "mcp.servers", {})
        rows = [
            {
                **row,
                "calls": sum(int(t["calls"]) for t in row["tools"].values()),
                "waiting": row["waiting"] or "-",
            }
            for row in result["servers"]
        ]
        columns = ["name", "transport", "state", "served", "waiting", "calls", "last_error"]
        emit(args, result, table(rows, columns) if rows else "no [MCP_SERVER] block is configured")
    elif args.action == "diff":
        result = await call(path, "mcp.diff", {"name": args.name})
        emit(args, result, diff_text(result))
    else:
        result = await call(path, "mcp.approve", {"name": args.name})
        text = f"{args.name}: approved {len(result['approved'])} tool(s)"
        if result["removed"]:
            text += f"; pins dropped for tools no longer listed: {', '.join(result['removed'])}"
        emit(args, result, text)


def diff_text(result: dict[str, Any]) -> str:
    if not result["changes"]:
        return f"{result['server']}: every tool is approved as it is listed now"
    lines: list[str] = []
    for change in result["changes"]:
        tool = printable(str(change["tool"]))
        lines.append(f"{tool}: {change['change']}")
        approved, now = change.get("approved") or {}, change.get("now") or {}
        for field in change.get("fields") or sorted(set(approved) | set(now)):
            if approved.get(field) == now.get(field):
                continue
            lines.append(f"  {field}:")
            if field in approved:
                lines.append(f"    - {_value(approved.get(field))}")
            if field in now:
                lines.append(f"    + {_value(now.get(field))}")
    lines.append(f"approve with: sealgate-ctl mcp approve {printable(str(result['server']))}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return printable(text)
