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
    approve = mcp.add_parser("approve", help="pin a server's tool definitions as they are now")
    approve.add_argument("name")
    approve.add_argument(
        "--expect",
        metavar="LISTING",
        help="approve only if the server still lists what `mcp diff` showed (its listing digest)",
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
        params = {"name": args.name, **({"expect": args.expect} if args.expect else {})}
        result = await call(path, "mcp.approve", params)
        text = f"{args.name}: approved {len(result['approved'])} tool(s)"
        if result["removed"]:
            text += f"; pins dropped for tools no longer listed: {', '.join(result['removed'])}"
        emit(args, result, text)


def diff_text(result: dict[str, Any]) -> str:
    if not result["changes"]:
        return f"{printable(str(result['server']))}: every tool is approved as it is listed now"
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
    server, listing = printable(str(result["server"])), printable(str(result["listing"]))
    lines.append(f"approve exactly this with: sealgate-ctl mcp approve {server} --expect {listing}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return printable(text)
