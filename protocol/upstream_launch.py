"""How a stdio upstream MCP server is started, for whoever starts it: the guardian in one-uid
mode, the supervisor (under the upstream user) in root mode. Both run the same launcher,
`sandbox/upstream_jail.py`, with the same rules from the server's `[MCP_SERVER]` block."""

from __future__ import annotations

import json
from pathlib import Path

from protocol.pyfun import McpServerConfig

#: The launcher of stdio servers: run as a program (`python -I`), never imported.
JAIL = Path(__file__).resolve().parents[1] / "sandbox" / "upstream_jail.py"
#: The guardian's end of the supervisor's launcher socket, in root mode (a descriptor number).
LAUNCHER_FD_VARIABLE = "HUB_UPSTREAM_LAUNCHER_FD"


def kept_variables(config: McpServerConfig) -> list[str]:
    """The names of the only variables the program gets: its key's and its block's `env`."""
    return ([config.env_key] if config.env_key else []) + list(config.env)


def jail_argv(config: McpServerConfig, python: str) -> list[str]:
    """`python -I upstream_jail.py POLICY -- COMMAND...` for the block's program."""
    policy = {
        "keep": kept_variables(config),
        "read": list(config.read_paths),
        "write": list(config.write_paths),
        "ports": list(config.connect_ports),
    }
    return [python, "-I", str(JAIL), json.dumps(policy), "--", *config.command]
