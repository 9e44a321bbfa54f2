"""A checkout under a 0700 home, started as root (issue 24 item 6): the service users cannot
run its interpreter, and the supervisor says so (which user, which directory with its mode
and owner, what to change) and exits 78, instead of a bare PermissionError and exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import ROOT


def test_a_checkout_under_a_0700_home_is_refused_with_what_to_change() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the supervisor switches to the service users (CI runs as root)")
    with tempfile.TemporaryDirectory(prefix="sealgate-0700-") as top:
        os.chmod(top, 0o755)
        home = Path(top) / "root-home"
        checkout = home / "sealgate"
        checkout.mkdir(parents=True)
        for name in ("supervisor.py", ".pyfun"):
            shutil.copy2(ROOT / name, checkout / name)
        for package in ("supervise", "protocol"):
            shutil.copytree(
                ROOT / package, checkout / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        # the virtualenv inside the checkout, as `make` builds it
        (checkout / ".venv").symlink_to((ROOT / ".venv").resolve())
        home.chmod(0o700)
        done = subprocess.run(
            [str(checkout / ".venv" / "bin" / "python"), "-I", "supervisor.py"],
            cwd=checkout,
            env={
                "PATH": "/usr/bin:/bin",
                "HUB_PORT": "1",
                "HUB_RUNTIME_DIR": f"{top}/var",
                "HUB_ENV_FILE": f"{top}/none.env",
                "HUB_LOCK_DIR": f"{top}/locks",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 78, done.stderr
    assert "refusing to start: user hub-guardian" in done.stderr, done.stderr
    assert f"may not pass through {home} (mode 0700, owner root)" in done.stderr
    assert f"chmod o+x {home}" in done.stderr and "/opt/sealgate" in done.stderr
    assert "cannot start:" not in done.stderr
    assert "Traceback" not in done.stderr
