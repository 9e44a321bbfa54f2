"""Start an upstream stdio MCP server with exactly the environment its block names.

Run by the guardian as `python -I upstream_jail.py --keep A,B -- COMMAND ARGS...` (it lives
beside the sandbox's own seccomp filter, which it reuses; the guardian imports neither): the
program gets the variables named in `--keep` (the block's `env_key` and `env`, whose values the
guardian put in this launcher's environment), a fixed `PATH` unless the block names one, and
nothing else of the guardian's. Then `PR_SET_NO_NEW_PRIVS` and the sandbox's seccomp filter,
where the kernel has them, before `exec`: the program can gain no privilege and open no raw,
packet or netlink socket. This file imports nothing of SealGate's but the seccomp filter, so it
runs with `-I` (no PYTHON* variables, no user site).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: What a stdio server finds programs by when its block names no PATH (not the guardian's).
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def environment(keep: list[str], source: dict[str, str]) -> dict[str, str]:
    env = {name: source[name] for name in keep if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def _contain() -> None:
    """No new privileges, and the sandbox's socket filter (best effort: logged to stderr)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        from sandbox import seccomp

        why = seccomp.install()
        if why:
            print(f"sealgate jail: containment incomplete: {why}", file=sys.stderr)
    except Exception as exc:  # a kernel without seccomp: the program still runs, said so
        print(f"sealgate jail: containment incomplete: {exc}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--keep" or argv[2] != "--":
        print("usage: upstream_jail.py --keep NAMES -- COMMAND [ARGS...]", file=sys.stderr)
        return 64
    keep = [name for name in argv[1].split(",") if name]
    command = argv[3:]
    env = environment(keep, dict(os.environ))
    _contain()
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 (no shell: the words as configured)
    except OSError as exc:
        print(f"sealgate jail: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
