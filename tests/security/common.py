"""What the security tests share: a one-provider configuration on a fake, and plain calls
to the running stack's JSON API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fakes.providers import FakeOpenAI

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
