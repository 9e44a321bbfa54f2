"""The app against a hub whose guardian is gone: a clear "hub unreachable" state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt

from desktop.window import MainWindow
from tests.desktop.test_app import connect
from tests.security.split import SandboxProcess, orphaned_sandbox


@pytest.fixture
def orphaned() -> Iterator[SandboxProcess]:
    with orphaned_sandbox() as sandbox:
        yield sandbox


def test_a_hub_without_its_guardian_shows_hub_unreachable(
    qtbot: Any, make_window: Callable[[], MainWindow], orphaned: SandboxProcess
) -> None:
    window = make_window()
    connect(qtbot, window, orphaned.url, "sg_any-token")
    status = window.connect_tab.status.text()
    assert status.startswith("Hub unreachable: the hub answers but cannot serve"), status
    assert "guardian is unreachable" in status


def test_the_health_check_says_the_guardian_is_away(
    qtbot: Any, make_window: Callable[[], MainWindow], orphaned: SandboxProcess
) -> None:
    tab = make_window().connect_tab
    tab.url.setText(orphaned.url)
    qtbot.mouseClick(tab.health_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.health_button.isEnabled(), timeout=15_000)
    assert tab.status.text().startswith("Hub unreachable: the hub answers but cannot serve")
