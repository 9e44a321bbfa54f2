"""The reliability suite prints its figures at the end of a run (docs/RELIABILITY.md records
one `make soak` run's)."""

from __future__ import annotations

import json
import sys

import pytest

MODULES = {
    "tests.reliability.test_faults_processes": "FAULTS_SURVIVED",
    "tests.reliability.test_faults_providers": "FAULTS_SURVIVED",
    "tests.reliability.test_faults_storage": "FAULTS_SURVIVED",
    "tests.reliability.test_floods": "FIGURES",
    "tests.reliability.test_soak": "FIGURES",
    "tests.reliability.test_openapi": "CASES_RUN",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures: dict[str, object] = {}
    faults: list[str] = []
    for name, attribute in MODULES.items():
        module = sys.modules.get(name)
        value = getattr(module, attribute, None) if module is not None else None
        if not value:
            continue
        if attribute == "FAULTS_SURVIVED":
            faults.extend(value)
        elif attribute == "CASES_RUN":
            figures["schemathesis_requests"] = len(value)
        else:
            figures[name.rsplit(".", 1)[-1]] = value
    if not figures and not faults:
        return
    terminalreporter.section("reliability figures")
    for fault in faults:
        terminalreporter.write_line(f"fault survived: {fault}")
    terminalreporter.write_line(f"faults survived: {len(faults)}")
    for name, value in figures.items():
        terminalreporter.write_line(f"{name}: {json.dumps(value)}")
