"""SealGate's supervisor: starts the guardian, then the sandbox, and keeps both running.

    python supervisor.py          (what `make run` and the Docker entrypoint do)

It reads HUB_CONFIG (default ./.pyfun), HUB_ENV_FILE (./.env), HUB_RUNTIME_DIR (./var),
HUB_HOST/HUB_PORT, HUB_SINGLE_UID, HUB_GUARDIAN_USER (hub-guardian) and HUB_SANDBOX_USER
(hub-sandbox), so several instances can run side by side from any working directory;
HUB_SANDBOX_WORKERS=N (default 1) starts N sandbox processes on the one port.

SIGTERM and SIGINT stop both children and exit 0; SIGHUP is forwarded to the guardian, which
reloads. A child that dies is restarted with backoff; exit 78 (EX_CONFIG) means this
configuration cannot boot. Run as root, the guardian and the sandbox run as two unprivileged
users, each an isolated interpreter (`python -I`).

This file is only the entry point (also the `sealgate` command, `supervisor:main`); its parts
live in the `supervise/` package, one module a job (see `supervise/__init__.py`).
"""

from __future__ import annotations

import os
import sys

# `python -I supervisor.py` (the image, the Makefile) puts no script directory on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from supervise.arbiter import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
