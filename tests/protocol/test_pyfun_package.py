"""`protocol.pyfun` is a package of modules with one job each, and what callers import from
it stays where it was when it was one module."""

from __future__ import annotations

import ast

import protocol.pyfun
from tests.helpers import ROOT

PACKAGE = ROOT / "protocol" / "pyfun"
#: Every name imported from `protocol.pyfun` across the code, tests and benchmarks.
IMPORTED = {
    "DEFAULT_PORT",
    "DEFAULT_QUERY_MAX_RESULT_BYTES",
    "DEFAULT_QUERY_MAX_ROWS",
    "DEFAULT_QUERY_TIMEOUT_MS",
    "HARD_QUERY_MAX_RESULT_BYTES",
    "HARD_QUERY_MAX_ROWS",
    "RESERVED_QUERY_SCHEMAS",
    "DbQueryConfig",
    "DbSyncConfig",
    "DebugConfig",
    "HubLimitsConfig",
    "McpServerConfig",
    "ModelConfig",
    "ProviderConfig",
    "PyfunConfig",
    "PyfunError",
    "RoleConfig",
    "ToolConfig",
    "is_loopback_host",
    "parse",
    "with_env_overrides",
}


def _imports_from_pyfun() -> set[str]:
    names: set[str] = set()
    for top in ("protocol", "guardian", "sandbox", "supervise", "tests", "bench", "desktop"):
        for path in (ROOT / top).rglob("*.py"):
            if PACKAGE in path.parents:
                continue
            if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
                continue  # bench/.litellm-venv and other tools' own trees, not ours
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == "protocol.pyfun":
                    names.update(alias.name for alias in node.names)
    return names


def test_every_name_callers_import_is_exported() -> None:
    assert _imports_from_pyfun() <= IMPORTED
    assert set(protocol.pyfun.__all__) >= IMPORTED
    for name in protocol.pyfun.__all__:
        assert getattr(protocol.pyfun, name) is not None


def test_no_module_is_over_about_400_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert len(sizes) >= 6
    assert max(sizes.values()) <= 400, sizes


def test_the_modules_import_each_other_in_one_direction() -> None:
    """typed <- lexing <- reader <- original/urls <- sections/mcp_servers <- build <- the
    package."""
    order = ["typed", "lexing", "reader", "original", "urls", "sections", "mcp_servers", "build"]
    for rank, name in enumerate(order):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "protocol.pyfun."
            ):
                used = node.module.rsplit(".", 1)[1]
                assert order.index(used) < rank, f"{name} imports {used}"
