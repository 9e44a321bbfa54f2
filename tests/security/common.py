"""What the security tests share: a one-provider configuration on a fake, and plain calls
to the running stack's JSON API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fakes.providers import FakeOpenAI
from tests.helpers import rpc_as_sandbox

#: A provider key shaped like a real one (24+ characters, no scanner mistakes it).
PROVIDER_KEY = "fake-sec-key-0123456789abcdefghij"


def provider_block(fake: FakeOpenAI, *, keyed: bool = True) -> str:
    key = 'env_key = "FAKE_PROVIDER_KEY"' if keyed else 'requires_key = "false"'
    return f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
{key}
default_model = "m"
timeout_sec = "5"
[LLM_PROVIDER.fake_END]
"""


def call_api(url: str, tool: str, params: dict[str, Any], token: str | None = None) -> Any:
    """POST /api as a client would; returns (status, body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{url}/api", json={"tool": tool, "params": params}, headers=headers, timeout=30
    )
    return response.status_code, response.json()


def admin_socket(stack: Any) -> Any:
    return stack.runtime / "guardian" / "admin.sock"


def issue_token(stack: Any, user: str, role: str = "user") -> str:
    """Add a user with `role` and return a fresh API token for it."""
    from tests.helpers import run_ctl

    added = run_ctl(
        admin_socket(stack), "users", "add", user, "--role", role, stdin="a password here\n"
    )
    assert added.returncode == 0, added.stderr
    issued = run_ctl(admin_socket(stack), "tokens", "issue", "--user", user)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


async def sandbox_client(stack: Any) -> Any:
    """An RPC client on the stack's guardian.sock, as a compromised sandbox would hold one
    (the stack must run with one uid, so this test process is the sandbox's uid)."""
    return await rpc_as_sandbox(stack.runtime / "run" / "guardian.sock")


def caller(token: str | None) -> dict[str, str]:
    wire = {"ip": "127.0.0.1", "user_agent": "security-test"}
    if token:
        wire["credential"] = token
    return wire
