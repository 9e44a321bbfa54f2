"""Authentication on every HTTP route of the real stack, with the official MCP client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.mcp_client import mcp_session
from tests.helpers import ROOT, GuardianProcess, Stack, run_ctl

BOOTSTRAP = "bootstrap-token-e2e-0123456789abcdef"
ROLES = """
[ROLE.searchless]
tools = "llm_complete, health_check, list_active_tools, get_model_info"
[ROLE.searchless_END]
[SEARCH_PROVIDER.local_search]
api = "brave"
base_url = "http://127.0.0.1:9/res/v1/web/search"
allow_insecure = "true"
requires_key = "false"
[SEARCH_PROVIDER.local_search_END]
"""


def ctl(stack: Stack, *args: str, stdin: str = "") -> str:
    done = run_ctl(stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
    done.check_returncode()
    return done.stdout.strip()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(
        env={"SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP},
        # web_search's chain must reach the keyless local_search for the tool to register.
        config_text=(ROOT / ".pyfun")
        .read_text()
        .replace('default_provider = "brave"', 'default_provider = "local_search"')
        + ROLES,
    )


async def _tool_names(url: str, token: str, kind: str = "http") -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with mcp_session(url, kind, "legacy", headers=headers) as client:
        return sorted(t.name for t in (await client.list_tools()).tools)


def test_every_route_but_the_public_ones_needs_a_credential(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz").status_code == 200
    for method, path in [
        ("POST", "/mcp"),
        ("POST", "/mcp/"),
        ("GET", "/sse/"),
        ("POST", "/sse/messages/?session_id=x"),
        ("POST", "/auth/logout"),
    ]:
        if path == "/auth/logout":
            continue  # logout without a session is harmless and public by nature
        response = httpx.request(method, f"{stack.url}{path}", json={})
        assert response.status_code == 401, (method, path, response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthenticated"
    page = httpx.get(f"{stack.url}/")
    assert page.status_code == 401 and "<form id=login>" in page.text
    assert "anthropic" not in page.text  # nothing of the status page without a session


async def test_mcp_with_and_without_a_token(stack: Stack) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the client raises its own 401 error type
        await _tool_names(stack.url, "sg_not-a-real-token")
    for kind in ("http", "sse"):
        assert "health_check" in await _tool_names(stack.url, BOOTSTRAP, kind)


async def test_revocation_takes_effect_within_seconds(stack: Stack) -> None:
    ctl(stack, "users", "add", "erin", stdin="erin's password\n")
    token = ctl(stack, "tokens", "issue", "--user", "erin")
    assert "health_check" in await _tool_names(stack.url, token)
    ctl(stack, "tokens", "revoke", token)
    deadline = time.monotonic() + 8
    headers = {"authorization": f"Bearer {token}"}
    while httpx.post(f"{stack.url}/mcp/", json={}, headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "revoked token still accepted after 8 s"
        await asyncio.sleep(0.25)


def test_login_cookie_and_logout(stack: Stack) -> None:
    ctl(stack, "users", "add", "frank", stdin="frank's password\n")
    with httpx.Client(base_url=stack.url) as client:
        refused = client.post("/auth/login", json={"username": "frank", "password": "nope"})
        assert refused.status_code == 401
        malformed = client.post(
            "/auth/login", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        done = client.post(
            "/auth/login", json={"username": "frank", "password": "frank's password"}
        )
        assert done.status_code == 200
        cookie = done.headers["set-cookie"]
        assert "sg_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        page = client.get("/")
        assert page.status_code == 200 and "Guardian link" in page.text
        assert client.post("/auth/logout").status_code == 200
        assert client.get("/").status_code == 401


async def test_a_role_without_web_search_cannot_use_it_even_by_hand_made_rpc(
    stack: Stack,
) -> None:
    ctl(stack, "users", "add", "gina", "--role", "searchless", stdin="gina's password\n")
    token = ctl(stack, "tokens", "issue", "--user", "gina")
    headers = {"Authorization": f"Bearer {token}"}
    async with mcp_session(stack.url, headers=headers) as client:
        result = await client.call_tool("web_search", {"query": "x"})
    assert result.is_error and "forbidden" in result.content[0].text
    # The sandbox itself, compromised, sends the RPC with gina's token and claims admin:
    sandbox_proc = os.stat(f"/proc/{stack.pid_of('sandbox')}")
    script = f"""
import asyncio, json, sys
from protocol.channel import open_unix_channel
from protocol.client import RPCClient
async def main():
    client = RPCClient(lambda: open_unix_channel({str(stack.runtime / "run" / "guardian.sock")!r}),
                       client_name="sandbox", hello_params={{"listen": ["127.0.0.1"]}})
    client.start()
    assert await client.wait_connected(5)
    caller = {{"ip": "127.0.0.1", "user_agent": "x", "credential": {token!r}}}
    out = []
    for params in ({{"caller": caller, "tool": "web_search", "query": "x", "principal": "admin"}},
                   {{"caller": {{**caller, "principal": "admin"}}, "tool": "web_search", "query": "x"}},
                   {{"caller": caller, "tool": "web_search", "query": "x"}}):
        try:
            await client.call("search.web", params)
            out.append("ALLOWED")
        except Exception as exc:
            out.append(exc.code.value)
    print(json.dumps(out))
    await client.close()
asyncio.run(main())
"""
    probe = subprocess.run(
        [sys.executable, "-c", script],
        user=sandbox_proc.st_uid,
        group=sandbox_proc.st_gid,
        cwd="/",
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **({"extra_groups": []} if os.geteuid() == 0 else {}),
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == ["invalid_params", "invalid_params", "forbidden"]


def test_no_users_on_a_non_loopback_bind_answers_401_naming_the_fix() -> None:
    guardian = GuardianProcess(env={"HUB_HOST": "0.0.0.0"}).start()
    try:
        script = f"""
import asyncio
from protocol.channel import open_unix_channel
from protocol.client import RPCClient
async def main():
    client = RPCClient(lambda: open_unix_channel({str(guardian.socket_path)!r}), client_name="sandbox", hello_params={{"listen": ["127.0.0.1"]}})
    client.start()
    await client.wait_connected(5)
    try:
        await client.call("auth.verify", {{"caller": {{"ip": "1.2.3.4", "user_agent": "x"}}}})
    except Exception as exc:
        print(exc.code.value, exc.message)
    await client.close()
asyncio.run(main())
"""
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert out.startswith("unauthenticated") and "users add" in out
    finally:
        guardian.stop()
    assert Path(guardian.dir).exists() is False


def test_openai_sdk_with_a_wrong_and_a_right_key(stack: Stack) -> None:
    import openai

    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sg_wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=BOOTSTRAP, max_retries=0) as right:
        assert right.models.list().data is not None


def test_anthropic_sdk_with_a_wrong_and_a_right_key_in_either_header(stack: Stack) -> None:
    """Issue 27, item 4: Claude Code sends its key as `x-api-key` or as a bearer token."""
    import anthropic

    hello: Any = [{"role": "user", "content": "hi"}]
    with anthropic.Anthropic(base_url=stack.url, api_key="sg_wrong", max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            wrong.messages.count_tokens(model="m", messages=hello)
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    for right in (
        anthropic.Anthropic(base_url=stack.url, api_key=BOOTSTRAP, max_retries=0),
        anthropic.Anthropic(base_url=stack.url, auth_token=BOOTSTRAP, max_retries=0),
    ):
        with right:
            with pytest.raises(anthropic.NotFoundError):  # past the gate: nothing to count
                right.messages.count_tokens(model="m", messages=hello)
            with pytest.raises(anthropic.NotFoundError):  # past the gate: the model is unknown
                right.messages.create(model="no-such-model", max_tokens=5, messages=hello)


def test_x_api_key_carries_our_credential_behind_a_gate_that_uses_authorization(
    stack: Stack,
) -> None:
    gate = {"authorization": "Bearer hf_the_space_gate_token"}
    refused = httpx.get(f"{stack.url}/v1/models", headers=gate, timeout=10)
    assert refused.status_code == 401
    ours = httpx.get(f"{stack.url}/v1/models", headers={**gate, "x-api-key": BOOTSTRAP}, timeout=10)
    assert ours.status_code == 200, ours.text
    api = httpx.post(
        f"{stack.url}/api",
        json={"tool": "health_check", "params": {}},
        headers={**gate, "x-api-key": BOOTSTRAP},
        timeout=10,
    )
    assert api.status_code == 200, api.text
