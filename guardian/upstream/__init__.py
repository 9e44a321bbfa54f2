"""Upstream MCP servers behind the hub (docs/UPSTREAM_MCP.md).

The guardian is the only MCP client of an upstream: `connection` keeps one session per
configured server (a stdio program started through `sandbox/upstream_jail.py`, or Streamable
HTTP / SSE with the credential its block names), `pool` follows the configuration,
`definitions` and `pins` decide which tools are served (only those whose definition an operator
approved), and `service` answers the sandbox's sealed `mcp.list` and `mcp.call` and the
operator's commands.
"""
