"""The supervisor's parts; `supervisor.py` is the entry point that runs them.

It runs as root, so it imports `protocol/` and nothing of the guardian or the sandbox (the
import-boundary test fails the build otherwise). One module a job:

- `users`: the service users, and who may read what (code, configuration, secrets)
- `runtime_dirs`: the runtime directory's owners and modes, never through a planted link
- `hardening`: the supervisor itself not dumpable, its environ block scrubbed
- `instance_lock`: one live instance per pair of service users
- `children`: how a child is started, stopped and restarted (its states and backoff)
- `leftovers`: the child subreaper, and the sweep of what children fork and leave behind
- `hello`: whether the guardian answers on its admin socket
- `signals`: handlers that only queue; the loop drains the queue
- `preflight`: the configuration and the identities, checked before anything starts
- `upstreams`: root mode's stdio upstream MCP servers, under their own user, for the guardian
- `arbiter`: the main loop that puts these together, and `main()`
"""

from __future__ import annotations

from pathlib import Path

#: Where the project's packages lie: the checkout, or site-packages once installed.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: How every child interpreter starts: isolated (no user site, no PYTHON* variables, no
#: script directory on sys.path), running an entry script that bootstraps sys.path itself.
ISOLATED = "-I"
#: The sandbox's too: no `site`, so no `.pth` file runs before its protections.
NO_SITE = "-S"
