"""The sandbox's environment allowlist: a fact both sides share, as data.

The supervisor builds the sandbox's environment from exactly these names (never a prefix)
and the sandbox reads nothing else, so a secret that reached the supervisor's environment
never reaches the internet-facing process. Kept in `protocol/` so the supervisor, which
runs as root, needs no sandbox code to know it.
"""

from __future__ import annotations

#: Every environment variable the sandbox may receive. Names only, never a prefix.
SANDBOX_ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "HOME",
    "USER",
    "LOGNAME",
    "HUB_CONFIG",
    "HUB_RUNTIME_DIR",
    "HUB_DATA_DIR",
    "HUB_HOST",
    "HUB_PORT",
    "HUB_LOG_LEVEL",
    # text | json (JSON lines with the trace and span ids; protocol/logformat.py)
    "HUB_LOG_FORMAT",
    # A Hugging Face Space's public host name (not a secret): an allowed Host and Origin.
    "SPACE_HOST",
    # How many sandbox processes share the port (protocol/workers.py): each then binds it
    # with SO_REUSEPORT.
    "HUB_SANDBOX_WORKERS",
    "LISTEN_FDS",
    "LISTEN_PID",
)
