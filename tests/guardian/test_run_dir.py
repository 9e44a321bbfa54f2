"""The guardian refuses a socket directory the sandbox's user could have replaced
(guardian/run_dir.py): a `run/` that is not its own or is writable by others, and a `run/`
(or a link to it) inside a directory others may write, as a Kubernetes emptyDir's root
(0777) is, unless `run/` is a mount point there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardian.run_dir import mount_points, unsafe_run_dir

ME = os.geteuid()
SANDBOX = 65534
root_only = pytest.mark.skipif(ME != 0, reason="needs root to give files to other users")


def made(path: Path, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def test_the_supervisors_layout_is_accepted(tmp_path: Path) -> None:
    run = made(made(tmp_path / "var", 0o755) / "run", 0o2750)
    assert unsafe_run_dir(run, ME, SANDBOX, frozenset()) is None
    assert unsafe_run_dir(made(tmp_path / "var" / "own", 0o700), ME, ME, frozenset()) is None


def test_a_run_dir_others_may_write_is_refused(tmp_path: Path) -> None:
    run = made(tmp_path / "run", 0o2770)
    assert "writable by other users" in str(unsafe_run_dir(run, ME, SANDBOX, frozenset()))


def test_run_in_an_emptydir_root_is_refused_unless_it_is_a_mount_point(tmp_path: Path) -> None:
    empty_dir = made(tmp_path / "shared", 0o777)  # a real emptyDir's root
    run = made(empty_dir / "run", 0o2750)
    reason = unsafe_run_dir(run, ME, SANDBOX, frozenset())
    assert reason is not None and "could be replaced" in reason
    # mounted there (a subPath), the name cannot be renamed by anyone
    assert unsafe_run_dir(run, ME, SANDBOX, frozenset({str(run)})) is None


def test_a_link_in_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    target = made(made(tmp_path / "safe", 0o755) / "run", 0o2750)
    runtime = made(tmp_path / "g", 0o777)
    (runtime / "run").symlink_to(target)
    reason = unsafe_run_dir(runtime / "run", ME, SANDBOX, frozenset())
    assert reason is not None and str(runtime) in reason
    # the same link in a directory only the guardian writes is fine
    own = made(tmp_path / "own", 0o755)
    (own / "run").symlink_to(target)
    assert unsafe_run_dir(own / "run", ME, SANDBOX, frozenset()) is None
    # and a link leading into a directory others may write is not
    shared = made(made(tmp_path / "shared", 0o777) / "run", 0o2750)
    (own / "run2").symlink_to(shared)
    assert unsafe_run_dir(own / "run2", ME, SANDBOX, frozenset()) is not None


def test_a_sticky_directory_protects_only_our_own_names(tmp_path: Path) -> None:
    sticky = made(tmp_path / "tmp", 0o1777)
    run = made(sticky / "run", 0o700)
    assert unsafe_run_dir(run, ME, SANDBOX, frozenset()) is None


@root_only
def test_names_of_other_users_are_refused(tmp_path: Path) -> None:
    sticky = made(tmp_path / "tmp", 0o1777)
    theirs = made(sticky / "run", 0o700)
    os.chown(theirs, SANDBOX, SANDBOX)
    assert unsafe_run_dir(theirs, ME, SANDBOX, frozenset()) is not None
    parent = made(tmp_path / "sandboxes", 0o755)
    os.chown(parent, SANDBOX, SANDBOX)
    run = made(parent / "run", 0o700)
    reason = unsafe_run_dir(run, ME, SANDBOX, frozenset())
    assert reason is not None and "sandbox's user" in reason
    other = made(tmp_path / "other", 0o700)
    os.chown(other, 12345, 12345)
    assert "belongs to uid 12345" in str(unsafe_run_dir(other, ME, SANDBOX, frozenset()))


def test_a_missing_run_dir_says_so(tmp_path: Path) -> None:
    assert "cannot be checked" in str(unsafe_run_dir(tmp_path / "nope", ME, SANDBOX, frozenset()))


def test_mount_points_are_read_from_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / / rw - ext4 /dev/root rw\n"
        "30 22 0:40 /run /var/lib/sealgate/g/run rw - tmpfs tmpfs rw\n"
        "31 22 0:41 / /with\\040space rw - tmpfs tmpfs rw\n"
    )
    assert mount_points(str(info)) == {"/", "/var/lib/sealgate/g/run", "/with space"}
    assert mount_points(str(tmp_path / "missing")) == frozenset()
