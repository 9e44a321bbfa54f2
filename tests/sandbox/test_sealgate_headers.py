"""`sealgate_headers`: what the hub reports, as header values that are always safe to send."""

from __future__ import annotations

from sandbox.openai_api import sealgate_extra, sealgate_headers

RESULT = {
    "text": "hi",
    "provider": "gemini",
    "model": "gemini-test",
    "fallback_path": [{"provider": "anthropic", "error": "HTTP 503\r\nset-cookie: evil=1"}],
    "usage": {"input_tokens": 9, "output_tokens": 5},
    "cost_usd": 0.000141,
    "latency_ms": 12.5,
    "finish_reason": "stop",
}


def test_every_value_is_one_printable_ascii_line() -> None:
    headers = sealgate_headers(RESULT)
    assert headers["x-sealgate-fallback-path"] == "anthropic:HTTP 503set-cookie: evil=1"
    for value in headers.values():
        assert all(" " <= c <= "~" for c in value)
    assert headers["x-sealgate-cost-usd"] == "0.00014100"
    assert headers["x-sealgate-input-tokens"] == "9"


def test_a_result_with_missing_fields_still_gives_every_header() -> None:
    headers = sealgate_headers({"provider": "ünïcode-provider"})
    assert headers["x-sealgate-provider"] == "ncode-provider"
    assert headers["x-sealgate-cost-usd"] == "0.00000000"
    assert headers["x-sealgate-fallback-path"] == ""
    assert sealgate_extra({})["fallback_path"] == []
