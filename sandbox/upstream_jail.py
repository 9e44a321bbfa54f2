"""Start an upstream stdio MCP server contained: exactly the environment its block names, and
the sandbox's own self-sandboxing (`sandbox.selfsandbox`) before `exec`.

Run by the guardian as `python -I upstream_jail.py POLICY -- COMMAND ARGS...`, where POLICY is
JSON naming the variables to keep (the block's `env_key` and `env`, whose values the guardian
put in this launcher's environment), and what the program may read, write and connect to. The
program gets those variables, a fixed `PATH` unless the block names one, and nothing else of
the guardian's. Then, as the sandbox does to itself: `PR_SET_NO_NEW_PRIVS`; Landlock reads
confined to system libraries, the Python installation, its command's files and `read_paths`,
writes to `write_paths` and /dev/null, TCP connect to `connect_ports` only (by port, not host:
Landlock has no host rules), abstract sockets and signals scoped (ABI 6); the seccomp filter
(no UDP, so no DNS: a contained program reaches hosts by address or /etc/hosts only; and no
Unix socket, since Landlock does not stop a connect to a socket file such as the guardian's); and
`PR_SET_PDEATHSIG`, so it dies with the guardian. The guardian's data directory, its env file
and its database are not readable, whatever the uid. What was applied is printed to stderr,
which the guardian logs. This file imports only the sandbox's own modules, so it runs with
`-I` (no PYTHON* variables, no user site).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

#: What a stdio server finds programs by when its block names no PATH (not the guardian's).
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
PR_SET_PDEATHSIG = 1


def environment(keep: list[str], source: dict[str, str]) -> dict[str, str]:
    env = {name: source[name] for name in keep if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def readable(policy: dict[str, Any], command: list[str]) -> list[Path]:
    """System paths and the Python installation (as the sandbox reads them), the command's
    own absolute paths (the program, a script) and the block's `read_paths`."""
    from protocol.sandboxpaths import SYSTEM_READABLE

    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths = [Path(p) for p in (*sorted(prefixes), *SYSTEM_READABLE)]
    paths += [Path(word) for word in command if word.startswith("/")]
    paths += [Path(p) for p in policy.get("read", [])]
    paths.append(Path(f"/proc/{os.getpid()}"))
    return paths


def contain(policy: dict[str, Any], command: list[str]) -> str:
    import ctypes

    from sandbox import selfsandbox

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    applied = selfsandbox.apply(
        selfsandbox.Policy(
            readable=tuple(readable(policy, command)),
            writable=(Path("/dev/null"), *(Path(p) for p in policy.get("write", []))),
            connect_ports=tuple(int(p) for p in policy.get("ports", [])),
            unix_sockets=False,
        )
    )
    return applied.describe()


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: upstream_jail.py POLICY -- COMMAND [ARGS...]", file=sys.stderr)
        return 64
    policy = json.loads(argv[0])
    command = argv[2:]
    env = environment(list(policy.get("keep", [])), dict(os.environ))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        described = contain(policy, command)
    except Exception as exc:  # an old kernel: the program still runs, and the log says so
        described = f"containment failed: {type(exc).__name__}: {exc}"
    print(f"sealgate: contained: {described}", file=sys.stderr, flush=True)
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 (no shell: the words as configured)
    except OSError as exc:
        print(f"sealgate: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
