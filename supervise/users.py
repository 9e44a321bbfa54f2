"""The service users, and who may read what.

Run as root, the guardian and the sandbox run as two unprivileged users (created with
`useradd --system` if missing). Before either starts, the supervisor proves that both can run
the interpreter and read the code, and that the secret files are readable by the guardian's
user and not by the sandbox's; it refuses with the command that fixes things otherwise.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from supervise import ISOLATED, PROJECT_ROOT
from supervise.outcomes import Refusal

logger = logging.getLogger("sealgate.supervisor")


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    uid: int
    gid: int

    @classmethod
    def current(cls) -> Identity:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, os.getgid())


def ensure_user(name: str) -> Identity:
    """Return the system user `name`, creating it (no login shell, no home) if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        logger.info("creating system user %s", name)
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return Identity(name, entry.pw_uid, entry.pw_gid)


def _groups_of(identity: Identity) -> set[int]:
    groups = {identity.gid}
    groups.update(g.gr_gid for g in grp.getgrall() if identity.name in g.gr_mem)
    return groups


def _permits(st: os.stat_result, identity: Identity, groups: set[int], bits: int) -> bool:
    if st.st_uid == identity.uid:
        return bool(st.st_mode & (bits << 6))
    if st.st_gid in groups:
        return bool(st.st_mode & (bits << 3))
    return bool(st.st_mode & bits)


def may_access(path: Path, identity: Identity, want: int) -> bool:
    """Whether `identity` (with no supplementary groups but its own) may `want` `path`.

    `want` is a mode bit triple like 0o4 (read). Every parent directory needs search (x).
    """
    if identity.uid == 0:
        return True
    groups = _groups_of(identity)
    path = path.resolve()
    try:
        for parent in reversed(path.parents):
            if not _permits(parent.stat(), identity, groups, 0o1):
                return False
        return _permits(path.stat(), identity, groups, want)
    except OSError:
        return False


def barrier(path: Path, identity: Identity, want: int = 0o4) -> Path | None:
    """The first directory on the way to `path` that `identity` may not pass (search, x),
    or `path` itself when it may not `want` it; None when nothing bars the way. The path
    is walked as written: a venv's `bin/python` is a link, and its own directories count."""
    if identity.uid == 0:
        return None
    groups = _groups_of(identity)
    path = Path(os.path.abspath(path))
    for step in (*reversed(path.parents), path):
        try:
            st = step.stat()
        except OSError:
            return step
        if not _permits(st, identity, groups, want if step == path else 0o1):
            return step
    return None


def describe(path: Path) -> str:
    """`path (mode 0700, owner root)`: what an operator needs to see to change it."""
    try:
        st = path.stat()
    except OSError as exc:
        return f"{path} ({exc.strerror or exc})"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"{path} (mode {st.st_mode & 0o7777:04o}, owner {owner})"


_FIX = (
    " Put the checkout and its virtualenv where both service users can read them, e.g."
    " /opt/sealgate with `chmod -R o+rX /opt/sealgate`, and build the venv from a system"
    " Python (/usr/bin/python3); or set HUB_SINGLE_UID=1 for development only."
)


def unreadable_code(identity: Identity, python: str, failed: str = "") -> Refusal:
    """A refusal naming what `identity` cannot read (the interpreter or the code), the
    directory that bars it with its mode and owner, and what to change."""
    why = f" ({failed})" if failed else ""
    for target, want, what in (
        (Path(python), 0o5, f"run {python}"),
        (PROJECT_ROOT / "protocol" / "__init__.py", 0o4, f"read the code in {PROJECT_ROOT}"),
    ):
        blocked = barrier(target, identity, want)
        if blocked is None:
            continue
        pass_through = blocked != Path(os.path.abspath(target))
        verb = "pass through" if pass_through else "read"
        change = f" chmod o+x {blocked}" if pass_through else f" chmod o+r {blocked}"
        return Refusal(
            f"user {identity.name} (uid {identity.uid}) cannot {what}{why}: it may not {verb}"
            f" {describe(blocked)}. The service users must read the checkout and its"
            f" virtualenv; a checkout under a 0700 home (such as /root) bars them."
            f"{_FIX} To let them through where it is instead:{change}"
        )
    return Refusal(f"user {identity.name} cannot run {python} or import the code{why}.{_FIX}")


def check_code_readable(identity: Identity, python: str) -> None:
    """Prove that `identity` can run our interpreter and import our code. Refused (with the
    directory in the way) when it cannot, whether the exec itself fails (the interpreter
    lies under a directory it may not pass: PermissionError) or the import does."""
    try:
        probe = subprocess.run(
            [
                python,
                ISOLATED,
                "-c",
                f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r});"
                " import msgpack, protocol.pyfun",
            ],
            user=identity.uid,
            group=identity.gid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            capture_output=True,
            timeout=60,
            check=False,
        )
    except PermissionError as exc:
        raise unreadable_code(identity, python, exc.strerror or "permission denied") from None
    if probe.returncode != 0:
        last = probe.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise unreadable_code(identity, python, last[0][:200] if last else "")


def check_secret_files(paths: list[Path], guardian: Identity, sandbox: Identity) -> None:
    """Secret files must be readable by the guardian's user and not by the sandbox's.

    A directory (systemd credentials, Docker's /run/secrets) is checked file by file.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
        elif path.exists():
            files.append(path)
    for path in files:
        if guardian.uid != sandbox.uid and may_access(path, sandbox, 0o4):
            raise Refusal(
                f"{path} is readable by the sandbox user {sandbox.name}; secrets must not be."
                f" Run: chown {guardian.name}:{guardian.name} {path} && chmod 0600 {path}"
            )
        if not may_access(path, guardian, 0o4):
            raise Refusal(
                f"{path} is not readable by the guardian user {guardian.name}."
                f" Run: chown {guardian.name}:{guardian.name} {path} && chmod 0600 {path}"
            )
