"""The guardian's own check of its socket directory (`run/`) at start, wherever it came from
(the supervisor, systemd, a Kubernetes init container).

The sandbox connects to `run/guardian.sock`. If the sandbox's user could rename `run/` (or a
directory above it, or a link on the way) and put its own in its place, it could listen
where the guardian's clients connect, or make the guardian bind where it chose. So `run/`,
as configured and once links are followed, must be the guardian's, writable by no one else,
and no name on its path may be replaceable by another user: its directory is neither
writable by group or others (unless sticky, with the name owned by the guardian or root)
nor the sandbox's, unless the name is a mount point, which no one can rename. A Kubernetes
emptyDir's root is 0777: `run/` must be mounted (a subPath), not a name inside it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> frozenset[str]:
    """Where something is mounted (bind mounts and subPaths included: st_dev cannot tell)."""
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return frozenset()
    points = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.add(fields[4].encode().decode("unicode_escape"))
    return frozenset(points)


def _chain(path: Path) -> Iterable[Path]:
    """`path` and each directory above it, as written (no link followed)."""
    yield path
    yield from path.parents


def _replaceable(name: Path, own_uid: int, sandbox_uid: int, mounts: frozenset[str]) -> str | None:
    """Why another user could replace `name` in its directory; None when no one can."""
    if str(name) in mounts or name == name.parent:
        return None
    parent = os.lstat(name.parent)
    entry = os.lstat(name)
    others = sandbox_uid != own_uid
    if others and parent.st_uid == sandbox_uid:
        return f"{name.parent} belongs to the sandbox's user (uid {sandbox_uid})"
    writable = parent.st_mode & 0o022
    if writable and not parent.st_mode & stat.S_ISVTX:
        mode = stat.S_IMODE(parent.st_mode)
        return (
            f"{name.parent} is writable by other users (mode {mode:o}), so {name} could be replaced"
        )
    if writable and entry.st_uid not in (own_uid, 0):
        return f"{name} belongs to uid {entry.st_uid} in a shared directory ({name.parent})"
    return None


def unsafe_run_dir(
    run_dir: Path, own_uid: int, sandbox_uid: int, mounts: frozenset[str] | None = None
) -> str | None:
    """Why `run_dir` is not safe to put the guardian's socket in; None when it is."""
    mounts = mount_points() if mounts is None else mounts
    run_dir = Path(os.path.abspath(run_dir))
    try:
        resolved = run_dir.resolve(strict=True)
        st = os.stat(resolved)
        for chain in (_chain(run_dir), _chain(resolved)):
            for name in chain:
                reason = _replaceable(name, own_uid, sandbox_uid, mounts)
                if reason is not None:
                    return reason
    except OSError as exc:
        return f"{run_dir} cannot be checked: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{run_dir} is not a directory"
    if st.st_uid != own_uid:
        return f"{resolved} belongs to uid {st.st_uid}, not the guardian's ({own_uid})"
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        return f"{resolved} is writable by other users (mode {mode:o}; 2750 or 0700 expected)"
    return None
