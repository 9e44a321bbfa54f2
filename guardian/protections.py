"""The guardian's own hardening, its admin socket placement, and the protections report.

- `make_undumpable`: `PR_SET_DUMPABLE 0`, first thing at start. Secrets arriving as
  environment variables sit in our environ and memory; a non-dumpable process's
  /proc/<pid>/environ, /mem, /maps... belong to root and no same-uid process may ptrace it.
- `listen_admin`: with two uids the admin socket is a file the sandbox's uid cannot reach;
  with one uid it is a random abstract name, new at each start and published in our own
  directory, that a Landlock-scoped sandbox can neither connect to nor take first
  (`protocol.adminaddr`).
- `report`: what `sealgate-ctl status` prints under "protections".
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from guardian.server import GuardianServer
from protocol.adminaddr import new_name, publish
from protocol.methods import Surface
from protocol.protections import seen_from_proc
from protocol.runtime import RuntimeLayout

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
SYS_LANDLOCK_CREATE_RULESET = 444
#: Fresh names tried when one is taken (128 random bits: a collision means a bug).
NAME_TRIES = 8

#: The abstract name this process listens on, once `listen_admin` bound it.
_bound: dict[str, str] = {}

logger = logging.getLogger("sealgate.guardian")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def make_undumpable() -> bool:
    """True when this process is now not dumpable."""
    return bool(_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0) and not dumpable()


def dumpable() -> bool:
    return bool(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)


def kernel_landlock_abi() -> int:
    version = _libc().syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1)
    return version if version > 0 else 0


def admin_address(layout: RuntimeLayout, *, single_uid: bool) -> str:
    """Where `listen_admin` bound the admin socket, as `status` shows it."""
    if not single_uid:
        return str(layout.admin_socket)
    name = _bound.get("name")
    return "@" + name[1:] if name else "(not bound yet)"


async def listen_admin(server: GuardianServer, layout: RuntimeLayout, *, single_uid: bool) -> None:
    """Bind the admin socket where the sandbox cannot reach it."""
    path = layout.admin_socket
    if not single_uid:
        await server.listen(path, Surface.ADMIN, 0o600)
        return
    # A file from an earlier two-uid run would be reachable by a same-uid sandbox.
    if path.is_socket():
        path.unlink()
    name = await _listen_fresh_name(server)
    publish(path, name)
    _bound["name"] = name
    abi = kernel_landlock_abi()
    if abi < 6:
        logger.error(
            "single uid and Landlock ABI %d < 6: the sandbox CAN connect to the admin socket"
            " (@%s); run as root for two uids or on a kernel with Landlock ABI 6 or newer",
            abi,
            name[1:],
        )


async def _listen_fresh_name(server: GuardianServer) -> str:
    """Listen on a new random abstract name; one already taken (by anyone) is never
    waited for: another is drawn."""
    for _ in range(NAME_TRIES):
        name = new_name()
        try:
            await server.listen_abstract(name, Surface.ADMIN)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            logger.warning("abstract admin name @%s is taken; drawing another", name[1:])
            continue
        return name
    raise OSError(errno.EADDRINUSE, f"{NAME_TRIES} random admin names were all taken")


def report(*, sandbox_uid: int, admin_address: str, sandbox_pids: Iterable[int]) -> dict[str, Any]:
    """Protections as the guardian sees them, with the kernel's view of each sandbox."""
    sandboxes = []
    for pid in sorted(set(sandbox_pids)):
        try:
            seen = seen_from_proc(Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
        sandboxes.append({"pid": pid, **seen})
    return {
        "uids": "two" if sandbox_uid != os.getuid() else "one",
        "guardian_uid": os.getuid(),
        "sandbox_uid": sandbox_uid,
        "guardian_dumpable": dumpable(),
        "kernel_landlock_abi": kernel_landlock_abi(),
        "admin_socket": admin_address,
        "sandboxes": sandboxes,
    }
