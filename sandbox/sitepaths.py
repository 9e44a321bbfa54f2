"""The sandbox's `site`, without `.pth` files: `python -S` starts with no site-packages on
sys.path, and `add_site_packages` puts them there the way `site` would (a venv's own, and
the base installation's when the venv includes system site packages) but never reads a
`.pth` file, so no installed package runs code before the sandbox's protections.

Like `site.venv`, it sets sys.prefix and sys.exec_prefix to the venv (without `site` they
name the base installation), which is also what the sandbox's Landlock rules let it read.
Standard library only: it runs before anything else.
"""

from __future__ import annotations

import os
import site
import sys


def _venv_config(prefix: str) -> dict[str, str] | None:
    """The venv's pyvenv.cfg as a map, or None when `prefix` is no venv."""
    path = os.path.join(prefix, "pyvenv.cfg")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    config = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip().lower()] = value.strip()
    return config


def site_packages() -> list[str]:
    """Where `site` would look for packages (and, unlike it, sets the venv's prefix)."""
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    config = _venv_config(prefix)
    if config is None:
        return site.getsitepackages()
    sys.prefix = sys.exec_prefix = prefix
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found = [os.path.join(prefix, "lib", version, "site-packages")]
    if config.get("include-system-site-packages", "false").lower() == "true":
        found += site.getsitepackages([sys.base_prefix])
    return found


def add_site_packages() -> None:
    """Append the site-packages directories to sys.path; read no `.pth` file."""
    for path in site_packages():
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
