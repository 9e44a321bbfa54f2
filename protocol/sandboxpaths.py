"""What the sandbox may read and write under Landlock, as paths: shared so that the sandbox
applies it and the supervisor can check that no secret lies beneath it.

Computed only (the sandbox's Landlock rules are in `sandbox/selfsandbox.py`). Reads: the
sandbox's own code, the Python installation and venv, system libraries, CA certificates, a
few harmless /etc files, the config file, the guardian socket's directory and its state
directory. Writes: its state directory and /dev/null. Keep secrets outside all of these.
"""

from __future__ import annotations

import sys
from pathlib import Path

from protocol.runtime import RuntimeLayout

#: System paths that hold code, libraries, time zones and certificates, never a secret.
SYSTEM_READABLE = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/dev/urandom",
    "/sys/devices/system/cpu",
    "/proc/cpuinfo",
    "/proc/stat",
    "/proc/meminfo",
)

_CODE_ROOT = Path(__file__).resolve().parent.parent


def readable(layout: RuntimeLayout, config_path: Path) -> tuple[Path, ...]:
    """Where the sandbox may read (and exec), besides its writable paths and its /proc."""
    prefixes = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return (
        _CODE_ROOT / "sandbox",
        _CODE_ROOT / "protocol",
        *sorted(prefixes),
        *(Path(p) for p in SYSTEM_READABLE),
        config_path.resolve(),
        layout.run_dir,
    )


def writable(layout: RuntimeLayout) -> tuple[Path, ...]:
    return tuple(dict.fromkeys((layout.sandbox_dir, layout.sandbox_data_dir, Path("/dev/null"))))


def exposing(secret: Path, layout: RuntimeLayout, config_path: Path) -> Path | None:
    """The sandbox-readable path `secret` lies beneath (or is), if any."""
    target = secret.resolve()
    for allowed in (*readable(layout, config_path), *writable(layout)):
        allowed = allowed.resolve()
        if target == allowed or allowed in target.parents:
            return allowed
    return None
