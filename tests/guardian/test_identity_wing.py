"""The shape of identity and storage (issue 25, items 2 and 4): no import circle anywhere in
the guardian (function-level imports included), the principal in a leaf module, every
service listed in `Services` and never reached through another, and storage in repositories
of one job each, none over about 400 lines."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from guardian.services import Services
from guardian.storage import base
from tests.helpers import ROOT

GUARDIAN = ROOT / "guardian"
MAX_LINES = 400


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, wherever the import statement is (a
    function-level import holds a circle open as surely as a top-level one)."""
    modules = {module_name(p, package.parent): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_guardian_has_no_import_circle() -> None:
    assert circles(import_graph(GUARDIAN)) == []


def test_the_circle_finder_finds_a_function_level_circle(tmp_path: Path) -> None:
    """The shape main had: auth builds OAuth, which reaches back through a function-level
    import."""
    package = tmp_path / "guardian"
    (package / "oauth").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "oauth" / "__init__.py").write_text("")
    (package / "auth.py").write_text("def build():\n    from guardian.oauth.service import S\n")
    (package / "oauth" / "service.py").write_text("from guardian import auth\n")
    assert circles(import_graph(package)) == [["guardian.auth", "guardian.oauth.service"]]


def test_the_principal_is_a_leaf() -> None:
    """Roles, the principal and credential hashing import no other guardian module, so
    every part may build on them without a circle."""
    graph = import_graph(GUARDIAN)
    assert graph["guardian.identity.principal"] == set()
    assert graph["guardian.identity.passwords"] == set()


def test_no_identity_service_imports_the_resolution_above_it() -> None:
    """One direction only: accounts <- sessions, tokens, OAuth <- credentials."""
    graph = import_graph(GUARDIAN)
    below_credentials = (
        "guardian.identity.accounts",
        "guardian.identity.sessions",
        "guardian.identity.tokens",
        "guardian.oauth.service",
    )
    for name in below_credentials:
        assert "guardian.identity.credentials" not in graph[name], name
    assert "guardian.oauth.service" not in graph["guardian.identity.accounts"]


def test_services_list_every_identity_service_directly() -> None:
    fields = {f.name for f in dataclasses.fields(Services)}
    assert {"accounts", "sessions", "tokens", "oauth", "credentials", "limits"} <= fields
    assert "auth" not in fields


def test_no_service_is_reached_through_another() -> None:
    """`services.X.Y` where Y is itself a service (`services.auth.oauth`,
    `services.router.outbound` was the kind) is a service reached through another."""
    fields = {f.name for f in dataclasses.fields(Services)}
    services = fields | {"oauth", "outbound", "counters"}  # held by another on main
    found = []
    for path in sorted(GUARDIAN.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)):
                continue
            middle = node.value
            holder = middle.value
            holder_name = getattr(holder, "attr", getattr(holder, "id", ""))
            if holder_name == "services" and middle.attr in fields and node.attr in services:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_storage_is_split_into_repositories_of_one_job() -> None:
    storage_dir = GUARDIAN / "storage"
    for path in sorted(storage_dir.glob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{path.name} has {lines} lines"
    repositories = [c for c in base.Storage.__mro__ if c.__name__.endswith("Repository")]
    names = {c.__name__ for c in repositories}
    assert {
        "UserRepository",
        "AuditRepository",
        "LedgerRepository",
        "SecretRepository",
        "CounterRepository",
    } <= names
    for repository in repositories:
        # each is written against the primitives alone, never against another repository
        assert repository.__bases__ == (base.Database,), repository.__name__
