"""The reference server from npm (`@modelcontextprotocol/server-everything`), written by no
one here, behind SealGate over stdio and over Streamable HTTP: its tools listed and called
with the official client on /mcp and /sse, and its `get-env` tool shows the stdio program
got exactly the variables its block names, the credential redacted on the way back.

Slow (`make test-slow`): the package is installed from npm into
~/.cache/sealgate-mcp-everything when missing (SEALGATE_MCP_EVERYTHING_CACHE moves it), and
Node 22 comes from tests/setup_machine.sh (tests/node_tools.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.mcp_client import mcp_session
from tests.e2e.test_reload import ctl
from tests.helpers import EXAMPLE_CONFIG, Stack, base_env, free_port
from tests.node_tools import node_22
from tests.upstream_mcp import CANARY, KEY_VARIABLE, wait_for_port, write_env_file

pytestmark = pytest.mark.slow

VERSION = "2026.8.31"
PACKAGE = "@modelcontextprotocol/server-everything"


def everything_cache() -> Path:
    explicit = os.environ.get("SEALGATE_MCP_EVERYTHING_CACHE")
    return Path(explicit) if explicit else Path.home() / ".cache" / "sealgate-mcp-everything"


def everything() -> Path:
    """The package's entry script, installed from npm at the pinned version when missing."""
    cache = everything_cache()
    package = cache / "node_modules" / "@modelcontextprotocol" / "server-everything"
    try:
        installed = json.loads((package / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        installed = None
    if installed != VERSION:
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(cache),
                f"{PACKAGE}@{VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"npm could not install {PACKAGE}: {done.stderr[-2000:]}"
    return package / "dist" / "index.js"


@contextlib.contextmanager
def http_everything(node: str, script: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [node, str(script), "streamableHttp"],
        env=base_env({"PORT": str(port)}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 60)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _config(node: str, script: Path, port: int) -> str:
    node_home = Path(node).resolve().parent.parent
    return (
        EXAMPLE_CONFIG.read_text()
        + f"""
[MCP_SERVER.everything]
command = "{node} {script} stdio"
env_key = "{KEY_VARIABLE}"
read_paths = "{script.parent.parent.parent.parent}, {node_home}"
prefix = "ev_"
timeout_sec = "20"
connect_timeout_sec = "30"
[MCP_SERVER.everything_END]
[MCP_SERVER.everyhttp]
url = "http://127.0.0.1:{port}/mcp"
allow_insecure = "true"
env_key = "{KEY_VARIABLE}"
prefix = "evh_"
timeout_sec = "20"
[MCP_SERVER.everyhttp_END]
"""
    )


async def test_the_reference_server_over_stdio_and_http(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    node = node_22()
    assert node, "Node 22 is missing: run tests/setup_machine.sh (it installs it from npm)"
    script = everything()
    with http_everything(node, script) as port:
        stack = stack_factory(
            single_uid=True,
            config_text=_config(node, script, port),
            before_start=lambda s: write_env_file(s.dir, tmp_path / "unused"),
        )
        for _ in range(120):
            rows = json.loads(ctl(stack, "mcp", "list", "--json").stdout)["servers"]
            if all(row["state"] == "ready" for row in rows):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"the reference server did not connect: {rows}")
        for server in ("everything", "everyhttp"):
            assert ctl(stack, "mcp", "approve", server).returncode == 0
        for kind in ("http", "sse"):
            async with mcp_session(stack.url, kind) as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                assert {"ev_echo", "ev_get-sum", "evh_echo", "evh_get-sum"} <= names, names
                for prefix in ("ev_", "evh_"):
                    echoed = await client.call_tool(f"{prefix}echo", {"message": "hello"})
                    assert "hello" in echoed.content[0].text
                    summed = await client.call_tool(f"{prefix}get-sum", {"a": 2, "b": 40})
                    assert "42" in summed.content[0].text
        async with mcp_session(stack.url) as client:
            env = (await client.call_tool("ev_get-env", {})).content[0].text
        variables = json.loads(env)
        assert set(variables) == {KEY_VARIABLE, "PATH"}, variables
        assert variables[KEY_VARIABLE] == "[REDACTED]" and CANARY not in env
