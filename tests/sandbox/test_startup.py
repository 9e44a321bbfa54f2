"""The sandbox's start-up order, in fresh interpreters: nothing third-party is imported
before the protections, and without `site` no `.pth` file runs while the packages are still
found."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT

THIRD_PARTY = (
    "hypercorn",
    "uvloop",
    "fastmcp",
    "mcp",
    "starlette",
    "msgpack",
    "httpx",
    "pydantic",
    "anyio",
    "aiosqlite",
    "h11",
    "h2",
)


def _run(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ROOT)],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_what_runs_before_the_protections_imports_nothing_third_party() -> None:
    """`sandbox.main` (settings, socket, self-sandboxing) loads the standard library and our
    own modules only: a poisoned package's import-time code comes after the protections."""
    out = _run(
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "from sandbox.sitepaths import add_site_packages; add_site_packages()\n"
        "import sandbox.main\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(THIRD_PARTY)!r})))"
    )
    assert out == []


def test_without_site_the_packages_are_found_and_no_pth_file_runs() -> None:
    out = _run(
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "from sandbox.sitepaths import add_site_packages; add_site_packages()\n"
        "import hypercorn, msgpack\n"
        "print(json.dumps({'prefix': sys.prefix, 'hook': '_distutils_hack' in sys.modules,"
        " 'site': [p for p in sys.path if p.endswith('-packages')]}))"
    )
    assert out["prefix"] == sys.prefix  # the venv, as `site` would have set it
    assert not out["hook"]  # setuptools' distutils-precedence.pth did not run
    assert any(str(p).startswith(sys.prefix) for p in out["site"])  # type: ignore[union-attr]
    # ...while with `site` it does: the check above can fail
    with_site = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; print('_distutils_hack' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert with_site.stdout.strip() == "True"
