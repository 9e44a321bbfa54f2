"""`make desktop-screenshot`: the real window under Xvfb writes the picture, and the run's
temporary home (chats, settings, credential) is gone afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from tests.helpers import ROOT

#: As `make desktop-screenshot` runs it.
XVFB = ("xvfb-run", "-a", "-s", "-screen 0 1280x800x24")


def test_the_screenshot_is_written_and_its_temporary_home_removed(tmp_path: Path) -> None:
    if shutil.which("xvfb-run") is None:
        pytest.fail("xvfb-run is missing: tests/setup_machine.sh installs Debian's xvfb")
    temp = tmp_path / "tmp"
    temp.mkdir()
    target = tmp_path / "shot.png"
    env = {**os.environ, "TMPDIR": str(temp), "QT_QPA_PLATFORM": "xcb"}
    env.pop("DISPLAY", None)
    done = subprocess.run(
        [*XVFB, sys.executable, "-m", "tests.desktop.screenshot", str(target)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    image = QImage(str(target))
    assert image.width() >= 1000 and image.height() >= 600
    assert not [p.name for p in temp.glob("sealgate-desktop-shot-*")]
