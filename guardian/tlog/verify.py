"""The whole audit log checked from the database: every leaf, every signed checkpoint, and
the rows the leaves stand for.

A leaf is bad when its row is missing (deleted, or the tail truncated), when its text does
not hash to its stored hash (edited), when it holds another index (rows moved), or when the
audit or usage row it records says something else (the readable tables edited behind the
log). The leaves are then hashed into the tree, and at each checkpoint's size the root must
be the signed one: a rewrite that kept every row consistent (a forged table) is caught there,
and named as the range between the last checkpoint that still holds and the first that fails.
Leaves after the last checkpoint are not yet protected by a signature.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from guardian.storage import Storage
from guardian.storage.tlog import leaf_digest
from guardian.tlog import canonical, merkle

PAGE = 5000
_AUDIT_FIELDS: tuple[str, ...] = (
    "ts",
    "principal",
    "user_id",
    "action",
    "outcome",
    "tool",
    "ip",
    "detail",
)
_USAGE_FIELDS: tuple[str, ...] = (
    "ts",
    "principal",
    "tool",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "outcome",
    "fallback_path",
    "estimated",
    "clamped",
    "user_id",
    "request_digest",
)

_AUDIT_ROWS = (
    "SELECT id, ts, principal, user_id, action, outcome, tool, ip, detail FROM {s}audit"
    " WHERE id >= ? AND id <= ?"
)
_USAGE_ROWS = (
    "SELECT key, ts, principal, tool, provider, model, input_tokens, output_tokens, cost_usd,"
    " latency_ms, outcome, fallback_path, estimated, clamped, user_id, request_digest"
    " FROM {s}usage"
    " WHERE key IN ({{keys}})"
)


@dataclass(frozen=True, slots=True)
class Target:
    """A signed (size, root) the tree must reproduce."""

    size: int
    root: bytes


@dataclass
class Report:
    ok: bool = True
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checked: list[int] = field(default_factory=list)  # checkpoint sizes that held
    first_bad_index: int | None = None
    problem: str = ""

    def fail(self, index: int | None, problem: str) -> None:
        if self.ok:
            self.ok, self.first_bad_index, self.problem = False, index, problem

    def to_map(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "checked": self.checked,
            "first_bad_index": self.first_bad_index,
            "problem": self.problem,
        }


def _same(a: Any, b: Any) -> bool:
    try:
        return canonical.encode(a) == canonical.encode(b)
    except canonical.NotCanonical:
        return False


async def _rows_of(storage: Storage, leaves: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The audit and usage rows the page's leaves stand for, keyed `audit:<id>`/`usage:<key>`."""
    found: dict[str, Any] = {}
    ids = [int(leaf["id"]) for leaf in leaves if leaf.get("kind") == "audit" and "id" in leaf]
    if ids:
        rows = await storage.fetch(
            storage.q(_AUDIT_ROWS),
            min(ids),
            max(ids),
        )
        found.update({f"audit:{row['id']}": row for row in rows})
    keys = [str(leaf["key"]) for leaf in leaves if leaf.get("kind") == "usage" and "key" in leaf]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = await storage.fetch(
            storage.q(_USAGE_ROWS).replace("{keys}", ", ".join("?" for _ in chunk)),
            *chunk,
        )
        found.update({f"usage:{row['key']}": row for row in rows})
    return found


def _disagrees(leaf: dict[str, Any], rows: dict[str, Any]) -> str:
    """What the readable row says differently from its leaf; '' when they agree."""
    kind = leaf.get("kind")
    if kind == "audit":
        ref, fields = f"audit:{leaf.get('id')}", _AUDIT_FIELDS
    elif kind == "usage":
        ref, fields = f"usage:{leaf.get('key')}", _USAGE_FIELDS
    else:
        return f"an unknown kind of leaf ({kind!r})"
    row = rows.get(ref)
    if row is None:
        return f"its {kind} row ({ref.split(':', 1)[1]}) is gone"
    for name in fields:
        if not _same(leaf.get(name), row[name]):
            return f"its {kind} row ({ref.split(':', 1)[1]}) says another {name}"
    return ""


async def verify(storage: Storage, targets: Sequence[Target]) -> Report:
    report = Report()
    wanted = sorted({(t.size, t.root) for t in targets})
    head = await storage.tlog_head()
    frontier: list[bytes] = []
    index = 0
    held = 0  # the size of the last checkpoint that held
    audit_leaves = 0
    first_audit: int | None = None
    while True:
        rows = await storage.tlog_leaves(index, index + PAGE)
        if not rows:
            break
        parsed = []
        for row in rows:
            try:
                leaf = json.loads(str(row["leaf"]))
            except ValueError:
                leaf = {}
            parsed.append(leaf if isinstance(leaf, dict) else {})
        sources = await _rows_of(storage, parsed)
        for row, leaf in zip(rows, parsed, strict=True):
            if int(row["idx"]) != index:
                report.fail(index, f"leaf {index} is missing (deleted)")
                break
            digest = leaf_digest(str(row["leaf"]))
            if digest.hex() != row["hash"]:
                report.fail(index, f"leaf {index} was edited: its text no longer hashes to it")
            elif leaf.get("index") != index:
                report.fail(
                    index, f"leaf {index} holds the record of leaf {leaf.get('index')}: moved"
                )
            else:
                disagreement = _disagrees(leaf, sources)
                if disagreement:
                    report.fail(index, f"leaf {index} and its row disagree: {disagreement}")
            if leaf.get("kind") == "audit":
                audit_leaves += 1
                if first_audit is None and isinstance(leaf.get("id"), int):
                    first_audit = int(leaf["id"])
            frontier = merkle.append(frontier, index, digest)
            index += 1
            for size, root in wanted:
                if size == index:
                    if merkle.frontier_root(frontier) == root:
                        report.checked.append(size)
                        held = size
                    else:
                        report.fail(
                            held,
                            f"the first {size} leaves do not hash to the root signed for"
                            f" {size}: a leaf from index {held} to {size - 1} was rewritten",
                        )
        if not report.ok and report.first_bad_index == index:
            break  # a gap: nothing after it lines up
        if len(rows) < PAGE:
            break
    report.size = index
    report.root = merkle.frontier_root(frontier)
    for size, _root in wanted:
        if size > index:
            report.fail(
                index,
                f"the log ends at {index} leaves but a checkpoint signed {size}:"
                f" leaves {index} to {size - 1} are gone",
            )
    if head.size != index or head.root != report.root:
        report.fail(index, f"the head says {head.size} leaves, the table holds {index}")
    if first_audit is not None:
        counted = await storage.fetchrow(
            storage.q("SELECT COUNT(*) AS n FROM {s}audit WHERE id >= ?"), first_audit
        )
        extra = int(counted["n"]) - audit_leaves if counted else 0
        if extra > 0:
            report.fail(None, f"{extra} audit row(s) are not in the log (written behind it)")
    return report
