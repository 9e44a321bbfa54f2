"""`HUB_SANDBOX_WORKERS`: how many sandbox processes serve the one port.

Read by the supervisor (which starts that many, and refuses a bad value before anything
starts) and by each sandbox (which then shares the port with `SO_REUSEPORT`). Kept in
`protocol/` since both sides read it and the supervisor imports no sandbox code.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.errors import SealGateError

WORKERS_VAR = "HUB_SANDBOX_WORKERS"
DEFAULT_WORKERS = 1
#: More than the cores of any machine this runs on; each worker holds one guardian link.
MAX_WORKERS = 64


class WorkersError(SealGateError):
    """`HUB_SANDBOX_WORKERS` is not a whole number from 1 to `MAX_WORKERS`."""


def sandbox_workers(environ: Mapping[str, str]) -> int:
    """The number of sandbox processes asked for (1 when unset or empty)."""
    raw = environ.get(WORKERS_VAR, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    if not (raw.isascii() and raw.isdigit()) or not DEFAULT_WORKERS <= int(raw) <= MAX_WORKERS:
        shown = raw if len(raw) <= 20 and raw.isascii() and raw.isprintable() else "(unreadable)"
        raise WorkersError(
            f"{WORKERS_VAR}={shown}: must be a whole number from {DEFAULT_WORKERS}"
            f" to {MAX_WORKERS} (the sandbox processes sharing the port)"
        )
    return int(raw)
