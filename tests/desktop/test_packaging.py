"""The desktop client is an optional extra: the server's install never pulls PySide6."""

from __future__ import annotations

import re
import tomllib

from tests.helpers import ROOT

DESKTOP_ONLY = ("pyside6", "shiboken6", "keyring", "pypdf", "openpyxl", "pytest-qt")


def pins(lock: str) -> set[str]:
    text = (ROOT / lock).read_text()
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", text, re.M)}


def test_the_server_lock_has_no_desktop_package() -> None:
    server = pins("requirements.lock")
    assert not {p for p in server if p.startswith(DESKTOP_ONLY)}


def test_the_desktop_and_dev_locks_pin_pyside6_with_hashes() -> None:
    for lock in ("requirements-desktop.lock", "requirements-dev.lock"):
        assert {"pyside6-essentials", "shiboken6", "keyring", "platformdirs"} <= pins(lock)
        block = (ROOT / lock).read_text().split("pyside6-essentials==", 1)[1].split("\n    #")[0]
        assert "--hash=sha256:" in block
    assert "pytest-qt" in pins("requirements-dev.lock")


def test_pyproject_declares_the_extra_and_the_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith(DESKTOP_ONLY)]
    assert any(d.startswith("PySide6") for d in project["optional-dependencies"]["desktop"])
    assert project["scripts"]["sealgate-desktop"] == "desktop.app:main"
