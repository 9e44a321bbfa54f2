"""sandbox never imports guardian, guardian never imports sandbox, protocol imports neither,
the supervisor (supervisor.py and its parts in supervise/, which run as root) imports only
protocol, and the desktop client and the standalone tools import none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

SUPERVISOR = {"supervisor", "supervise"}
FORBIDDEN = {
    "sandbox": {"guardian", *SUPERVISOR},
    "guardian": {"sandbox", *SUPERVISOR},
    "protocol": {"guardian", "sandbox", *SUPERVISOR},
    # The supervisor's parts: protocol/ only; never the entry point that imports them.
    "supervise": {"guardian", "sandbox", "supervisor"},
    # The desktop client talks to a hub over HTTP only, and ships without the server.
    "desktop": {"guardian", "sandbox", "protocol", *SUPERVISOR},
    # The standalone audit verifier: an auditor runs it without SealGate.
    "tools": {"guardian", "sandbox", "protocol", *SUPERVISOR},
}


def imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.add("__import__")
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_the_boundary(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = imported_packages(path) & (FORBIDDEN[package] | {"__import__"})
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_supervisor_runs_no_sandbox_or_guardian_code() -> None:
    bad = imported_packages(ROOT / "supervisor.py") & {"guardian", "sandbox", "__import__"}
    assert not bad, f"supervisor.py imports {sorted(bad)}"


def test_the_supervisor_entry_point_only_starts_its_parts() -> None:
    """supervisor.py stays the entry point; what it runs lives in supervise/."""
    assert imported_packages(ROOT / "supervisor.py") == {"__future__", "os", "sys", "supervise"}


def test_the_sandbox_reads_the_allowlist_the_supervisor_builds_from() -> None:
    from protocol.environment import SANDBOX_ENV_ALLOWLIST
    from sandbox.settings import ALLOWED_ENV

    assert ALLOWED_ENV is SANDBOX_ENV_ALLOWLIST
    assert all(name.isupper() and not name.endswith("_") for name in SANDBOX_ENV_ALLOWLIST)


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from guardian.secrets import load_secrets\nimport sandbox.app\n")
    assert {"guardian", "sandbox"} <= imported_packages(sample)
