"""`pip install .` gives a `sealgate` command that runs the hub (issue 24, item 7).

The install is laid out as pip lays it, without the network: setuptools' own `build_py` picks
the packages pyproject.toml names (in a copy of the sources, as it writes an egg-info beside
them), and pip's own script maker writes the console scripts pyproject.toml declares. The
command then runs from outside the checkout, with only the installed code on its path.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pip._vendor.distlib.scripts import ScriptMaker

from tests.helpers import PYTHON, ROOT, Stack, wait_for_healthz

SOURCES = (
    "pyproject.toml",
    "README.md",
    "supervisor.py",
    "supervise",
    "protocol",
    "guardian",
    "sandbox",
)


def scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_pyproject_declares_a_sealgate_command_that_runs_the_supervisor() -> None:
    assert scripts()["sealgate"] == "supervisor:main"


@pytest.fixture
def installed() -> Iterator[tuple[Stack, Path]]:
    """(a stack's directories, the install's bin/), the install in the stack's directory."""
    stack = Stack()
    source, lib, bin_dir = stack.dir / "src", stack.dir / "lib", stack.dir / "bin"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    (source / "desktop").mkdir()  # the desktop extra's package: not needed by the server
    built = subprocess.run(
        [PYTHON, "-c", "from setuptools import setup; setup()", "build_py", "--build-lib", lib],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    maker = ScriptMaker(None, str(bin_dir))
    maker.executable = PYTHON
    maker.variants = {""}
    for name, target in scripts().items():
        maker.make(f"{name} = {target}")
    for path in (lib, bin_dir):
        subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
    shutil.rmtree(source)
    stack.env["PYTHONPATH"] = str(lib)  # what site-packages is to a real install
    try:
        yield stack, bin_dir
    finally:
        stack.cleanup()


def test_the_sealgate_command_runs_the_hub_from_an_install(
    installed: tuple[Stack, Path],
) -> None:
    stack, bin_dir = installed
    # the entry point and every part of the supervisor are installed beside the packages
    lib = stack.dir / "lib"
    assert (lib / "supervisor.py").is_file()
    parts = {path.name for path in (ROOT / "supervise").glob("*.py")}
    assert {path.name for path in (lib / "supervise").glob("*.py")} == parts
    log = stack.log_path.open("ab")
    stack.process = subprocess.Popen(
        [str(bin_dir / "sealgate")],
        env=stack.env,
        cwd=stack.dir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    wait_for_healthz(stack.url, stack.process, stack.logs, "sealgate")
    for child in ("guardian", "sandbox"):  # they run the installed code, not the checkout's
        argv = Path(f"/proc/{stack.pid_of(child)}/cmdline").read_bytes().split(b"\0")
        assert f"{stack.dir / 'lib'}/{child}/__main__.py".encode() in argv, argv
    # without HUB_RUNTIME_DIR the installed CLI finds var/ where `sealgate` keeps it: the cwd
    assert stack.runtime == stack.dir / "var"
    without_runtime = {k: v for k, v in stack.env.items() if k != "HUB_RUNTIME_DIR"}
    status = subprocess.run(
        [str(bin_dir / "sealgate-ctl"), "status"],
        env=without_runtime,
        cwd=stack.dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(30) == 0
    assert "supervisor exiting with status 0" in stack.logs()
    assert str(ROOT) not in stack.logs()  # nothing came from the checkout
