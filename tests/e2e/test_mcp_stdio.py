"""MCP clients that only start local commands: `mcp-remote` from npm and the built-in bridge
(`sealgate-ctl mcp-stdio`), each driven end to end on stdio by the official MCP client,
listing and calling tools, in open mode (no header) and with auth on (the token in a header).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from protocol import __version__
from tests.fakes.providers import FakeOpenAI
from tests.helpers import ROOT, Stack
from tests.node_tools import mcp_remote, missing_reason, node_22
from tests.security.common import PROVIDER_KEY, provider_block

TOKEN = "bootstrap-token-stdio-0123456789abcdef"
ANSWER = "Hello through a local command"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text=ANSWER)
    server.start()
    yield server
    server.stop()


def _stack(fake: FakeOpenAI, env: dict[str, str]) -> Iterator[Stack]:
    config = '[HUB]\nname = "stdio test"\n[HUB_END]\n' + provider_block(fake)
    stack = Stack(env={"FAKE_PROVIDER_KEY": PROVIDER_KEY, **env}, config_text=config)
    try:
        yield stack.start()
    finally:
        stack.cleanup()


@pytest.fixture(scope="module")
def open_stack(fake: FakeOpenAI) -> Iterator[Stack]:
    yield from _stack(fake, {})


@pytest.fixture(scope="module")
def auth_stack(fake: FakeOpenAI) -> Iterator[Stack]:
    yield from _stack(fake, {"SEALGATE_BOOTSTRAP_TOKEN": TOKEN})


def drive(
    command: str, args: list[str], env: dict[str, str], errlog: Path, timeout: float = 90
) -> dict[str, Any]:
    """Start `command` as an MCP server on stdio, list its tools and call two of them."""

    async def run() -> dict[str, Any]:
        server = StdioServerParameters(command=command, args=args, env=env, cwd=str(errlog.parent))
        with errlog.open("w") as log:
            async with Client(stdio_client(server, errlog=log), mode="legacy") as client:
                tools = sorted(t.name for t in (await client.list_tools()).tools)
                answer = await client.call_tool("llm_complete", {"prompt": "Hi"})
                health = await client.call_tool("health_check", {})
                info = client.server_info
                resources = sorted(str(r.uri) for r in (await client.list_resources()).resources)
        return {
            "tools": tools,
            "answer": answer,
            "health": health,
            "info": info,
            "resources": resources,
        }

    try:
        return asyncio.run(asyncio.wait_for(run(), timeout=timeout))
    except BaseException as exc:
        raise AssertionError(f"{command} {args}: {exc!r}\n{errlog.read_text()}") from exc


def check(result: dict[str, Any]) -> None:
    assert {"health_check", "list_active_tools", "llm_complete"} <= set(result["tools"])
    answer = result["answer"]
    assert not answer.is_error and answer.content[0].text == ANSWER
    assert answer.structured_content["provider"] == "fake"
    assert not result["health"].is_error


@pytest.fixture
def node_tools() -> tuple[str, str]:
    reason = missing_reason()
    if reason is not None:
        pytest.fail(reason)
    node, script = node_22(), mcp_remote()
    assert node is not None and script is not None
    return node, str(script)


def remote_env(config_dir: Path) -> dict[str, str]:
    """mcp-remote's OAuth state goes to a directory of the test's, not ~/.mcp-auth."""
    return {"MCP_REMOTE_CONFIG_DIR": str(config_dir), "HOME": str(config_dir)}


def test_mcp_remote_open_mode(
    open_stack: Stack, node_tools: tuple[str, str], scratch: Callable[[str], Path]
) -> None:
    node, script = node_tools
    work = scratch("sealgate-mcp-remote-")
    args = [script, f"{open_stack.url}/mcp", "--transport", "http-only"]
    check(drive(node, args, remote_env(work), work / "stderr.log"))
    assert not any(p.name.endswith("_tokens.json") for p in work.rglob("*"))


def test_mcp_remote_with_the_token_in_a_header(
    auth_stack: Stack, node_tools: tuple[str, str], scratch: Callable[[str], Path]
) -> None:
    node, script = node_tools
    work = scratch("sealgate-mcp-remote-")
    # mcp-remote expands ${VAR} in its arguments: the token stays out of the command line.
    args = [
        script,
        f"{auth_stack.url}/mcp",
        "--transport",
        "http-only",
        "--header",
        "Authorization: Bearer ${SEALGATE_TOKEN}",
    ]
    env = {**remote_env(work), "SEALGATE_TOKEN": TOKEN}
    check(drive(node, args, env, work / "stderr.log"))


def sign_in_started(command: str, args: list[str], env: dict[str, str], errlog: Path) -> str:
    """Start `command` as an MCP server on stdio and return its log as soon as it shows the
    sign-in URL it asks a person to open; fail if the client gets through or gives up first.

    The refused client waits for a browser that never comes, so the test stops it as soon as
    the URL is out rather than when a wait runs out: the pass never depends on a timeout.
    """

    async def session() -> None:
        server = StdioServerParameters(command=command, args=args, env=env, cwd=str(errlog.parent))
        with errlog.open("w") as log:
            async with Client(stdio_client(server, errlog=log), mode="legacy") as client:
                await client.list_tools()

    def log_text() -> str:
        return errlog.read_text() if errlog.exists() else ""

    async def run() -> str:
        task = asyncio.create_task(session())
        for _ in range(600):  # a bound against a client that hangs silently, never the pass
            if "/oauth/authorize?" in log_text():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return log_text()
            if task.done():
                break
            await asyncio.sleep(0.1)
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise AssertionError(f"no sign-in URL within 60 s:\n{log_text()}")
        outcome = task.exception() or "the tools were listed"
        raise AssertionError(f"ended without a sign-in URL: {outcome!r}\n{log_text()}")

    return asyncio.run(run())


def test_mcp_remote_without_the_header_is_refused(
    auth_stack: Stack, node_tools: tuple[str, str], scratch: Callable[[str], Path]
) -> None:
    node, script = node_tools
    work = scratch("sealgate-mcp-remote-")
    args = [script, f"{auth_stack.url}/mcp", "--transport", "http-only"]
    # Refused, mcp-remote starts OAuth sign-in (the 401 names the metadata) and prints the URL
    # a person would open; that sign-in is SealGate's own OAuth: discovered from the 401, the
    # client registered (DCR), PKCE S256, the hub as the resource
    log = sign_in_started(node, args, remote_env(work), work / "stderr.log")
    assert f"{auth_stack.url}/oauth/authorize?" in log and "client_id=sgc_" in log
    assert "code_challenge_method=S256" in log and "resource=http" in log
    assert not any(p.name.endswith("_tokens.json") for p in work.rglob("*"))


def bridge_env(work: Path, **extra: str) -> dict[str, str]:
    # An empty runtime directory: the bridge must not need (or look for) an admin socket.
    return {"HUB_RUNTIME_DIR": str(work / "no-guardian-here"), "HOME": str(work), **extra}


BRIDGE = str(ROOT / "sealgate-ctl")


def test_bridge_open_mode(open_stack: Stack, scratch: Callable[[str], Path]) -> None:
    work = scratch("sealgate-bridge-")
    args = ["mcp-stdio", "--url", f"{open_stack.url}/mcp"]
    result = drive(BRIDGE, args, bridge_env(work), work / "stderr.log")
    check(result)
    # the bridge says the gateway's version, as the gateway does on HTTP (not fastmcp's)
    assert result["info"] is not None and result["info"].version == __version__
    # and the resources pass through it too
    assert result["resources"] == ["sealgate://models", "sealgate://status", "sealgate://usage/me"]
    assert not (work / "no-guardian-here").exists()


def test_bridge_with_the_token_from_the_environment(
    auth_stack: Stack, scratch: Callable[[str], Path]
) -> None:
    work = scratch("sealgate-bridge-")
    args = ["mcp-stdio", "--url", f"{auth_stack.url}/mcp"]
    check(drive(BRIDGE, args, bridge_env(work, SEALGATE_TOKEN=TOKEN), work / "stderr.log"))
    # a private Space: our token as X-API-Key while Authorization carries the Space gate's
    space = ["mcp-stdio", "--url", f"{auth_stack.url}/mcp", "--x-api-key"]
    env = bridge_env(work, SEALGATE_TOKEN=TOKEN, HF_TOKEN="hf_the_space_gate_token")
    check(drive(BRIDGE, space, env, work / "stderr.log"))
    # the legacy SSE endpoint too
    sse = ["mcp-stdio", "--url", f"{auth_stack.url}/sse", "--token-env", "MY_TOKEN"]
    check(drive(BRIDGE, sse, bridge_env(work, MY_TOKEN=TOKEN), work / "stderr.log"))


def test_bridge_without_a_token_is_refused(
    auth_stack: Stack, scratch: Callable[[str], Path]
) -> None:
    work = scratch("sealgate-bridge-")
    args = ["mcp-stdio", "--url", f"{auth_stack.url}/mcp"]
    with pytest.raises(AssertionError) as refused:
        drive(BRIDGE, args, bridge_env(work), work / "stderr.log")
    assert "401: a credential is required" in str(refused.value)
    assert "the token comes from $SEALGATE_TOKEN" in str(refused.value)
    assert "Traceback" not in str(refused.value)


def test_bridge_bad_url_is_a_usage_error(scratch: Callable[[str], Path]) -> None:
    import subprocess

    work = scratch("sealgate-bridge-")
    done = subprocess.run(
        [BRIDGE, "mcp-stdio", "--url", "ftp://example"],
        env={**bridge_env(work), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--url must be an http(s) URL" in done.stderr
    assert "Traceback" not in done.stderr


# -- the README's client configurations, as written ---------------------------------------

README_HOST = "https://sealgate.example.com"


def readme_servers() -> list[dict[str, Any]]:
    """Every server entry of the README's JSON client configurations."""
    from tests.test_readme import ALL

    entries = []
    for block in ALL:
        if block.lang == "json":
            config = json.loads(block.body)
            entries += list((config.get("mcpServers") or config.get("servers") or {}).values())
    return entries


def _substituted(value: str, stack: Stack) -> str:
    return (
        value.replace(README_HOST, stack.url)
        .replace("sg_...", TOKEN)
        .replace("/path/to/sealgate/sealgate-ctl", BRIDGE)
    )


def test_the_readme_documents_every_client() -> None:
    servers = readme_servers()
    assert any(s.get("command") == "npx" for s in servers)
    assert any(s.get("command", "").endswith("sealgate-ctl") for s in servers)
    assert any("url" in s and "type" not in s for s in servers)  # Cursor
    assert any(s.get("type") == "http" for s in servers)  # VS Code


def test_the_readme_stdio_configs_work(
    auth_stack: Stack, node_tools: tuple[str, str], scratch: Callable[[str], Path]
) -> None:
    node, script = node_tools
    for server in (s for s in readme_servers() if "command" in s):
        work = scratch("sealgate-readme-client-")
        args = [_substituted(a, auth_stack) for a in server["args"]]
        env = {k: _substituted(v, auth_stack) for k, v in server["env"].items()}
        command = _substituted(server["command"], auth_stack)
        if command == "npx":  # what `npx -y mcp-remote` runs, from the test's npm cache
            assert args[:2] == ["-y", "mcp-remote"]
            command, args = node, [script, *args[2:], "--transport", "http-only"]
            env.update(remote_env(work))
        else:
            env.update(bridge_env(work))
        check(drive(command, args, env, work / "stderr.log"))


def test_the_readme_http_configs_work(auth_stack: Stack) -> None:
    """Cursor's and VS Code's entries: their url and headers, sent by the official client."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async def run(url: str, headers: dict[str, str]) -> Any:
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode="auto") as client:
                return await client.call_tool("llm_complete", {"prompt": "Hi"})

    servers = [s for s in readme_servers() if "url" in s]
    assert len(servers) == 2
    for server in servers:
        headers = {
            k: _substituted(v, auth_stack).replace("${input:sealgate-token}", TOKEN)
            for k, v in server["headers"].items()
        }
        answer = asyncio.run(run(_substituted(server["url"], auth_stack), headers))
        assert not answer.is_error and answer.content[0].text == ANSWER
