"""The test layers: every test is in exactly one, so each layer can run alone.

- `unit`: in one process, no child process, no PostgreSQL (`make test-fast`, well under 30 s).
- `e2e`: real processes, sockets and PostgreSQL (`make test` runs `unit`, then `e2e`).
- `slow`: suites too long for `make test` (`make test-slow`, which CI also runs).

A test's layer comes from where it lives (the table below) and from the fixtures it takes: a
test under a unit directory that takes a process fixture, or whose module is listed as e2e,
is e2e. A unit test that starts a process fails and says where to move it, so the fast layer
stays fast without anyone timing it. Each run ends with its time per layer and the layers it
left out, naming the target that runs them: nothing is left out silently.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LAYERS = ("unit", "e2e", "slow")
TESTS = Path(__file__).resolve().parent
#: Where unit tests live (relative to tests/); everything else is e2e unless slow.
UNIT_PATHS = (
    "protocol",
    "guardian",
    "sandbox",
    "fakes",
    "supervise",
    "test_import_boundary.py",
    "test_layers.py",
)
#: Suites too long for `make test` (10 to 12 minutes on two cores).
SLOW_PATHS = ("reliability", "replicas")
#: Fixtures that start a process or PostgreSQL: a test taking one is e2e.
PROCESS_FIXTURES = frozenset({"postgres", "pg_database", "guardian", "stack_factory"})
#: Modules (or single tests, `module::name`) under the unit paths that start processes
#: without those fixtures.
E2E_TESTS = frozenset(
    {
        "guardian/test_boot.py",
        "guardian/test_config_check_original.py::test_config_check_lists_every_ignored_key_and_translation",
        "guardian/test_ctl.py::test_the_socket_defaults_to_the_checkouts_runtime_dir_not_the_cwd",
        "guardian/test_secretstore.py::test_a_guardian_reads_its_master_key_from_its_env_file",
        "guardian/test_secretstore.py::test_set_activates_delete_deactivates_and_values_never_show",
        "guardian/test_secretstore.py::test_no_master_key_disables_the_store_and_says_why",
        "guardian/test_usage_mine.py",
        "guardian/test_relay_rpc.py",
        "guardian/test_call_tasks.py",
        "sandbox/test_selfsandbox.py",
        "sandbox/test_startup.py",
    }
)
#: A parameter that selects a backend needing a server makes that case e2e.
SERVER_PARAMS = frozenset({"postgresql"})
#: The unit layer's own bound per test (`--timeout` on the command line overrides it); the
#: other layers take `timeout` from pyproject.toml.
UNIT_TIMEOUT_S = 30
TARGETS = {"unit": "make test-fast", "e2e": "make test", "slow": "make test-slow"}


def layer_of(item: pytest.Item) -> str:
    """The one layer of a collected test."""
    marked = [name for name in LAYERS if item.get_closest_marker(name) is not None]
    if len(marked) > 1:
        raise pytest.UsageError(f"{item.nodeid}: in more than one layer: {marked}")
    if marked:
        return marked[0]
    relative = Path(str(item.path)).resolve().relative_to(TESTS).as_posix()
    if relative.startswith(tuple(f"{p}/" for p in SLOW_PATHS)):
        return "slow"
    unit_place = any(relative == p or relative.startswith(f"{p}/") for p in UNIT_PATHS)
    name = getattr(item, "originalname", item.name)
    listed = relative in E2E_TESTS or f"{relative}::{name}" in E2E_TESTS
    fixtures = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    server = any(isinstance(value, str) and value in SERVER_PARAMS for value in params)
    if unit_place and not listed and not server and not fixtures & PROCESS_FIXTURES:
        return "unit"
    return "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    explicit_timeout = config.getoption("timeout", None) is not None
    for item in items:
        layer = layer_of(item)
        item.add_marker(layer)
        if layer == "unit" and not explicit_timeout and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_S))


class _Tally:
    """Time and count per layer for this run, and what the run deselected."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}
        self.ran: dict[str, int] = {}
        self.left_out: dict[str, int] = {}
        self.layer: dict[str, str] = {}


_TALLY = _Tally()


def pytest_sessionstart(session: pytest.Session) -> None:
    del session
    _TALLY.started = time.monotonic()


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        layer = layer_of(item)
        _TALLY.left_out[layer] = _TALLY.left_out.get(layer, 0) + 1


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _TALLY.layer[item.nodeid] = layer_of(item)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # under pytest-xdist the reports reach the controller, which ran no setup: the layer's
    # marker travels in the report's keywords
    layer = _TALLY.layer.get(report.nodeid) or next(
        (name for name in LAYERS if name in report.keywords), None
    )
    if layer is None:
        return
    _TALLY.seconds[layer] = _TALLY.seconds.get(layer, 0.0) + report.duration
    if report.when == "setup":
        _TALLY.ran[layer] = _TALLY.ran.get(layer, 0) + 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands what it deselected to the controller, which collects
    nothing itself (every worker collects and deselects alike)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["sealgate_left_out"] = dict(_TALLY.left_out)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    del error
    left_out = getattr(node, "workeroutput", {}).get("sealgate_left_out", {})
    for layer, count in left_out.items():
        _TALLY.left_out[layer] = max(_TALLY.left_out.get(layer, 0), count)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TALLY.ran and not _TALLY.left_out:
        return
    terminalreporter.section("time per layer")
    for layer in LAYERS:
        if layer in _TALLY.ran:
            terminalreporter.write_line(
                f"{layer}: {_TALLY.ran[layer]} tests, {_TALLY.seconds.get(layer, 0.0):.1f} s"
            )
    wall = time.monotonic() - _TALLY.started
    terminalreporter.write_line(f"this run: {wall:.1f} s wall clock, collection included")
    for layer in LAYERS:
        if layer in _TALLY.left_out:
            terminalreporter.write_line(
                f"not in this run: {layer}, {_TALLY.left_out[layer]} tests ({TARGETS[layer]})"
            )


def _refuse_processes(self: Any, *args: Any, **kwargs: Any) -> None:
    raise AssertionError(
        "a unit test started a process: list it in E2E_TESTS (tests/layers.py) or "
        "move it under an e2e directory"
    )


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """The unit layer's promise, checked rather than hoped for."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", _refuse_processes)
        yield
