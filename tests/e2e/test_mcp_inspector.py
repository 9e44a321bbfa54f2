"""The MCP Inspector CLI (another implementation than the Python SDK) against a real stack on
both HTTP transports: it lists the tools (with its portability check of their schemas), the
prompts and the resources, gets a prompt and reads a resource.

Slow (`make test-slow`, which installs the Inspector from npm: tests/setup_machine.sh).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.world import World
from tests.node_tools import inspector, inspector_missing, node_22

pytestmark = pytest.mark.slow

#: The Inspector reads the transport from the URL's path (/mcp: Streamable HTTP, /sse: SSE).
TRANSPORTS = [("mcp", "http"), ("sse", "sse")]


def run_inspector(
    url: str, transport: str, work: Path, *args: str, expect_rc: int = 0
) -> tuple[Any, str]:
    reason = inspector_missing()
    if reason is not None:
        pytest.fail(reason)
    node, script = node_22(), inspector()
    assert node is not None and script is not None
    command = [node, str(script), "--cli", url, "--transport", transport]
    command += list(args)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
        env={"HOME": str(work), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == expect_rc, (command, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout), done.stderr


@pytest.mark.parametrize(("path", "transport"), TRANSPORTS)
def test_the_inspector_lists_and_reads_everything(
    w: World, path: str, transport: str, scratch: Callable[[str], Path]
) -> None:
    work = scratch("sealgate-inspector-")
    url = f"{w.stack.url}/{path}"

    tools, report = run_inspector(url, transport, work, "--method", "tools/list", "--strict")
    names = [tool["name"] for tool in tools["tools"]]
    assert names == sorted(names) and {"health_check", "llm_complete", "summarize"} <= set(names)
    for tool in tools["tools"]:
        assert tool["title"] and tool["annotations"] and tool["outputSchema"]["type"] == "object"
    assert "error" not in report.lower(), report  # --strict: no schema portability error

    prompts, _ = run_inspector(url, transport, work, "--method", "prompts/list")
    assert [p["name"] for p in prompts["prompts"]] == ["summarize"]
    got, _ = run_inspector(
        url,
        transport,
        work,
        "--method",
        "prompts/get",
        "--prompt-name",
        "summarize",
        "--prompt-args",
        "text=The quick brown fox.",
    )
    assert got["messages"][0]["content"]["text"] == "Summarize briefly.\n\nThe quick brown fox."

    resources, _ = run_inspector(url, transport, work, "--method", "resources/list")
    uris = [r["uri"] for r in resources["resources"]]
    assert uris == ["sealgate://models", "sealgate://status", "sealgate://usage/me"]
    read, _ = run_inspector(
        url, transport, work, "--method", "resources/read", "--uri", "sealgate://models"
    )
    catalog = json.loads(read["contents"][0]["text"])
    assert "claude-test" in [m["id"] for m in catalog["models"]]
