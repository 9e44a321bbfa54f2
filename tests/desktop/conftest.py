"""Desktop tests: Qt offscreen, a real hub with fake providers, and no real keyring or home."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring
from keyring.backends import fail

from tests.desktop.hub import DesktopHub, start_hub


@pytest.fixture(scope="package")
def hub() -> Iterator[DesktopHub]:
    started = start_hub()
    yield started
    started.stop()


@pytest.fixture
def desk_hub(hub: DesktopHub) -> DesktopHub:
    hub.reset()
    return hub


@pytest.fixture(autouse=True)
def no_system_keyring() -> Iterator[None]:
    """Never touch the developer's keyring: the file fallback unless a test sets one."""
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(before)


@pytest.fixture
def make_window(qtbot: object, tmp_path: Path) -> Callable[[], object]:
    """Windows sharing one user's data and config directories (a restart reuses them)."""
    from desktop.credentials import CredentialVault
    from desktop.store import ChatStore, Settings
    from desktop.window import MainWindow

    def make() -> MainWindow:
        window = MainWindow(
            store=ChatStore(tmp_path / "data"),
            settings=Settings(tmp_path / "config"),
            vault=CredentialVault(tmp_path / "config"),
        )
        qtbot.addWidget(window)  # type: ignore[attr-defined]
        window.show()
        return window

    return make
