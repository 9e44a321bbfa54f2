"""The test layers' rules (tests/layers.py): where a test lands, and the unit layer's promise."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.layers import LAYERS, SLOW_PATHS, TESTS, UNIT_PATHS, layer_of


@dataclass
class _CallSpec:
    params: dict[str, Any]


@dataclass
class _Item:
    """What layer_of reads of a collected test."""

    path: Path
    name: str = "test_something"
    fixturenames: list[str] = field(default_factory=list)
    markers: tuple[str, ...] = ()
    callspec: _CallSpec | None = None
    nodeid: str = "tests/x.py::test_something"

    def __post_init__(self) -> None:
        self.originalname = self.name.split("[")[0]

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def layer(relative: str, **kwargs: Any) -> str:
    return layer_of(_Item(path=TESTS / relative, **kwargs))  # type: ignore[arg-type]


def test_the_place_decides_first() -> None:
    assert layer("guardian/test_planning.py") == "unit"
    assert layer("protocol/test_pyfun.py") == "unit"
    assert layer("e2e/test_stack.py") == "e2e"
    assert layer("security/test_budget.py") == "e2e"
    assert layer("test_readme.py") == "e2e"
    assert layer("reliability/test_soak.py") == "slow"


def test_a_process_a_server_or_a_listing_makes_a_unit_place_e2e() -> None:
    assert layer("guardian/test_storage.py", fixturenames=["pg_database"]) == "e2e"
    assert layer("guardian/test_auth.py", fixturenames=["tmp_path", "guardian"]) == "e2e"
    assert layer("guardian/test_x.py", fixturenames=["stack_factory"]) == "e2e"
    on_postgres = _CallSpec({"store": "postgresql"})
    on_sqlite = _CallSpec({"store": "sqlite"})
    assert layer("guardian/test_storage.py", callspec=on_postgres) == "e2e"
    assert layer("guardian/test_storage.py", callspec=on_sqlite) == "unit"
    assert layer("guardian/test_boot.py") == "e2e"
    secrets = "guardian/test_secretstore.py"
    assert layer(secrets, name="test_no_master_key_disables_the_store_and_says_why") == "e2e"
    assert layer(secrets, name="test_values_are_encrypted") == "unit"


def test_a_marker_wins_and_one_layer_only() -> None:
    assert layer("guardian/test_planning.py", markers=("slow",)) == "slow"
    assert layer("e2e/test_stack.py", markers=("slow",)) == "slow"
    with pytest.raises(pytest.UsageError, match="more than one layer"):
        layer("e2e/test_stack.py", markers=("e2e", "slow"))


def test_every_layer_has_a_place_that_exists() -> None:
    """`pytest -m slow` must collect tests (exit 5 would fail CI's `make test-slow`)."""
    assert LAYERS == ("unit", "e2e", "slow")
    for place in (*UNIT_PATHS, *SLOW_PATHS):
        assert (TESTS / place).exists(), place
    assert any((TESTS / SLOW_PATHS[0]).glob("test_*.py"))


def test_a_unit_test_cannot_start_a_process(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    with pytest.raises(AssertionError, match="a unit test started a process"):
        subprocess.run(["true"], check=False)


def test_a_unit_test_has_a_tight_timeout(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("timeout")
    if request.config.getoption("timeout", None) is None:
        assert marker is not None and marker.args[0] <= 30
