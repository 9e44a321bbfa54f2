"""The `x-sealgate-*` headers and the `sealgate` map carry provider error text (the fallback
path): a provider that echoes the key it refused must not leak it through them."""

from __future__ import annotations

import json

import httpx

from tests.e2e.world import KEYS, World


def test_a_refused_key_echoed_by_the_provider_never_reaches_headers_or_body(w: World) -> None:
    w.anthropic.refuse_keys.update({KEYS["ANTHROPIC_API_KEY"], KEYS["ANTHROPIC_API_KEY_2"]})
    body = {"model": "claude-test", "messages": [{"role": "user", "content": "Hello"}]}
    plain = httpx.post(f"{w.stack.url}/v1/chat/completions", json=body, timeout=30)
    assert plain.status_code == 200, plain.text
    assert plain.headers["x-sealgate-provider"] == "gemini"
    assert plain.headers["x-sealgate-fallback-path"].startswith("anthropic:")
    # The provider's own error text does flow into the header (so this test can fail) ...
    assert "invalid api key" in plain.headers["x-sealgate-fallback-path"]
    streamed = httpx.post(
        f"{w.stack.url}/v1/chat/completions", json={**body, "stream": True}, timeout=30
    )
    final = [
        json.loads(line[6:])
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and '"sealgate"' in line
    ]
    assert final and final[0]["sealgate"]["fallback_path"][0]["provider"] == "anthropic"
    assert w.anthropic.requests  # the provider did see (and refuse) the keys
    for response in (plain, streamed):
        seen = response.text + json.dumps(dict(response.headers))
        for secret in KEYS.values():
            assert secret not in seen


def test_the_messages_dialect_leaks_no_refused_key_either(w: World) -> None:
    """`/v1/messages` carries the same map (headers, body, a stream's `message_delta`)."""
    w.anthropic.refuse_keys.update({KEYS["ANTHROPIC_API_KEY"], KEYS["ANTHROPIC_API_KEY_2"]})
    body = {
        "model": "claude-test",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    plain = httpx.post(f"{w.stack.url}/v1/messages", json=body, timeout=30)
    assert plain.status_code == 200, plain.text
    assert "invalid api key" in plain.headers["x-sealgate-fallback-path"]
    streamed = httpx.post(f"{w.stack.url}/v1/messages", json={**body, "stream": True}, timeout=30)
    assert '"fallback_path":[{"provider":"anthropic"' in streamed.text
    for response in (plain, streamed):
        seen = response.text + json.dumps(dict(response.headers))
        for secret in KEYS.values():
            assert secret not in seen
