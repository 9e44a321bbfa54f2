"""The runtime directory (guardian/, sandbox/, run/, and the databases' directories): made
and fixed through descriptors, never through a link the sandbox's user could plant, and
refused when that user could rename entries in its root.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from protocol.runtime import RuntimeLayout
from supervise.outcomes import Refusal
from supervise.users import Identity


def prepare_runtime(layout: RuntimeLayout, guardian: Identity, sandbox: Identity) -> None:
    """Create the runtime directories with the owners and modes ARCHITECTURE.md fixes.

    Never through a symbolic link: the sandbox's user owns `sandbox/`, and a root supervisor
    that followed a link planted in its place would chown the link's target (say /etc) to
    that user. Each directory is opened with O_NOFOLLOW|O_DIRECTORY and fixed with
    fchown/fchmod on the descriptor; a link is refused with a message. With `HUB_DATA_DIR`
    the databases' two directories are made under it the same way.
    """
    _prepare_dirs(
        layout.root,
        [
            (layout.guardian_dir, guardian.uid, guardian.gid, 0o700),
            (layout.sandbox_dir, sandbox.uid, sandbox.gid, 0o700),
            # setgid, so guardian.sock created inside belongs to the sandbox's group
            (layout.run_dir, guardian.uid, sandbox.gid, 0o2750),
        ],
        sandbox,
    )
    if layout.data_root is not None:
        _prepare_dirs(
            layout.data_root,
            [
                (layout.guardian_data_dir, guardian.uid, guardian.gid, 0o700),
                (layout.sandbox_data_dir, sandbox.uid, sandbox.gid, 0o700),
            ],
            sandbox,
        )
    if os.geteuid() == 0:
        for directory in dict.fromkeys((layout.guardian_dir, layout.guardian_data_dir)):
            for path in directory.iterdir():
                os.chown(path, guardian.uid, guardian.gid, follow_symlinks=False)


def _prepare_dirs(root: Path, plan: list[tuple[Path, int, int, int]], sandbox: Identity) -> None:
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    root_fd = open_dir(root, None, str(root))
    try:
        _check_root(root_fd, root, sandbox)
        for directory, uid, gid, mode in plan:
            try:
                os.mkdir(directory.name, mode=0o700, dir_fd=root_fd)
            except FileExistsError:
                pass
            fd = open_dir(directory, root_fd, directory.name)
            try:
                if os.geteuid() == 0:
                    os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def open_dir(path: Path, dir_fd: int | None, name: str) -> int:
    """Open a directory without following a link in its last component; refuse a link."""
    try:
        return os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refusal(
                f"{path} is a symbolic link or not a directory; the runtime directory must"
                f" hold real directories only (something may have planted it): remove {path}"
                " and start again"
            ) from None
        raise


def _check_root(fd: int, root: Path, sandbox: Identity) -> None:
    """The runtime root must not let the sandbox's user rename or plant entries in it."""
    st = os.fstat(fd)
    sandbox_owns = sandbox.uid != os.geteuid() and st.st_uid == sandbox.uid
    if st.st_mode & 0o002 or sandbox_owns:
        raise Refusal(
            f"the runtime directory {root} is writable by the sandbox (mode"
            f" {stat.S_IMODE(st.st_mode):o}, owner uid {st.st_uid}); make it owned by the"
            f" supervisor's user and not world-writable: chown {os.geteuid()} {root} &&"
            f" chmod 0755 {root}"
        )
