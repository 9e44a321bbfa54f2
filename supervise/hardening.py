"""The supervisor itself: not dumpable, and no secret left in the environ block /proc shows.

Secrets arriving as environment variables (a Space's secrets) sit in the environ of every
process started before the sandbox; the supervisor is one, and it holds them for the guardian.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from protocol.environment import SANDBOX_ENV_ALLOWLIST

PR_SET_DUMPABLE = 4
#: Variables whose values are no secret and may stay readable in /proc/<pid>/environ.
KEEP_IN_ENVIRON = frozenset(
    {
        *SANDBOX_ENV_ALLOWLIST,
        "HUB_ENV_FILE",
        "HUB_SINGLE_UID",
        "HUB_GUARDIAN_USER",
        "HUB_SANDBOX_USER",
        "HUB_LOCK_DIR",
        "CREDENTIALS_DIRECTORY",
    }
)


def harden_self() -> str:
    """Not dumpable, and no secret left in the environ block /proc shows.

    Not dumpable, our /proc/<pid>/environ and /mem belong to root and no same-uid process
    may ptrace us; the values in the original environ block are overwritten too, so they are
    gone from it even for root. The guardian still gets them: the supervisor keeps its own
    copy of the environment.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    dumpable = "not dumpable"
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        dumpable = "DUMPABLE (prctl refused)"
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (fields 50, 51)
    except (OSError, IndexError, ValueError):
        return f"{dumpable}; environ not scrubbed (no /proc/self/stat)"
    if end <= start:
        return f"{dumpable}; environ empty"
    block = ctypes.string_at(start, end - start)
    offset, scrubbed = 0, 0
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and value and name.decode(errors="replace") not in KEEP_IN_ENVIRON:
            ctypes.memset(start + offset + len(name) + 1, 0, len(value))
            scrubbed += 1
        offset += len(entry) + 1
    return f"{dumpable}; {scrubbed} environ value(s) scrubbed"
