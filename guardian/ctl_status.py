"""`sealgate-ctl status` for people: the guardian's `status` map as labelled lines.

Each field gets a label and words (uptime in hours and minutes, the sandbox link as connected
or not, each background task as running or not with its restarts), never a Python dict;
`--json` keeps the map exact. Every value from outside is escaped by `printable`, and a field
this CLI does not know yet (a newer guardian) still shows, flattened, so nothing is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.printable import printable
from protocol.protections import describe_report

_WIDTH = 18
#: The fields a line below describes; any other field is shown as it comes.
_KNOWN = frozenset(
    {
        "version",
        "pid",
        "uptime_s",
        "config_path",
        "config_sha256",
        "database",
        "sandbox_connections",
        "sandboxes",
        "llm_providers",
        "search_providers",
        "tools",
        "background",
        "protections",
    }
)


def duration(seconds: float) -> str:
    """`45 s`, `12 min 5 s`, `3 h 20 min`, `2 d 4 h`."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _flat(value: Any) -> str:
    """Any value as one escaped line: lists joined by commas, maps as `key: value`."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{printable(str(k))}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_flat(v) for v in value)
    return printable(str(value))


def _tasks(tasks: Mapping[str, Any]) -> list[str]:
    out = []
    for name, task in sorted(tasks.items()):
        text = f"{printable(str(name))} {'running' if task.get('running') else 'not running'}"
        restarts = int(task.get("restarts") or 0)
        if restarts:
            text += f", restarted {restarts} time{'s' if restarts != 1 else ''}"
        if task.get("last_error"):
            text += f", last error: {printable(str(task['last_error']))}"
        out.append(text)
    return out or ["-"]


def _audit(audit: Mapping[str, Any]) -> list[str]:
    """Where the signing key is kept, its public half, and the last checkpoint."""
    lines = [
        f"signing key in {_flat(audit.get('key'))}, signed by {_flat(audit.get('signer'))}",
        f"verifier key {_flat(audit.get('verifier_key'))}",
        f"checkpoint of {int(audit.get('checkpoint_size') or 0):,} leaves exported to"
        f" {_flat(audit.get('export'))}",
    ]
    if audit.get("refused"):
        lines.append(f"NO CHECKPOINT SIGNED: {_flat(audit.get('refused'))}")
    return lines


def _sandbox(connections: Any, linked: Any) -> list[str]:
    """The connection count, then one line per sandbox process (pid, requests sent)."""
    count = int(connections or 0)
    if not count:
        return ["not connected (the sandbox is not running, or cannot reach the guardian)"]
    lines = [f"connected ({count} connection{'s' if count != 1 else ''})"]
    for seen in linked if isinstance(linked, list) else []:
        if isinstance(seen, Mapping):
            lines.append(
                f"process pid {_flat(seen.get('pid'))}, {_flat(seen.get('calls'))} requests"
            )
    return lines


def status_lines(result: Mapping[str, Any]) -> list[str]:
    """The `status` answer as `label  value` lines (a label only on a field's first line)."""
    rows: list[tuple[str, list[str]]] = []
    sha = str(result.get("config_sha256") or "")
    rows.append(
        (
            "guardian",
            [
                f"{_flat(result.get('version'))}, pid {_flat(result.get('pid'))},"
                f" up {duration(float(result.get('uptime_s') or 0))}"
            ],
        )
    )
    rows.append(
        (
            "configuration",
            [
                _flat(result.get("config_path"))
                + (f" (sha256 {printable(sha[:12])})" if sha else "")
            ],
        )
    )
    rows.append(("database", [_flat(result.get("database"))]))
    rows.append(("sandbox", _sandbox(result.get("sandbox_connections"), result.get("sandboxes"))))
    rows.append(("LLM providers", [_flat(result.get("llm_providers"))]))
    rows.append(("search providers", [_flat(result.get("search_providers"))]))
    rows.append(("tools", [_flat(result.get("tools"))]))
    background = result.get("background") or {}
    if background:
        rows.append(("background tasks", _tasks(background.get("tasks") or {})))
        ledger = background.get("usage_ledger") or {}
        if ledger:
            rows.append(
                (
                    "usage ledger",
                    [
                        f"{int(ledger.get('pending') or 0):,} pending of"
                        f" {int(ledger.get('capacity') or 0):,},"
                        f" {int(ledger.get('dropped') or 0):,} dropped"
                    ],
                )
            )
        audit = background.get("audit_log") or {}
        if audit:
            rows.append(("audit log", _audit(audit)))
    for key, value in sorted(result.items()):
        if key not in _KNOWN:
            rows.append((printable(str(key)).replace("_", " "), [_flat(value)]))
    rows.append(
        (
            "protections",
            [printable(line) for line in describe_report(result.get("protections") or {})],
        )
    )
    lines = []
    for label, values in rows:
        for i, value in enumerate(values):
            lines.append(f"{label if i == 0 else '':<{_WIDTH}} {value}".rstrip())
    return lines
