"""How a start can end: a refusal the operator can act on, and the exit codes that say so.

A child exiting with EX_CONFIG cannot boot with this configuration, so the supervisor stops
with it too instead of crash-looping (the sysexits.h code systemd and Docker pass on).
"""

from __future__ import annotations

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2
EX_CONFIG = 78  # sysexits.h: "cannot boot with this configuration"


class Refusal(Exception):
    """The supervisor will not start as things are; the message says what to change."""
