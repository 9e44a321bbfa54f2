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
    assert "x-sealgate-cost-usd" not in headers  # no cost known: not claimed to be 0
    assert headers["x-sealgate-fallback-path"] == ""
    assert sealgate_extra({})["fallback_path"] == []


def test_the_cost_header_and_the_body_say_the_same() -> None:
    """A model without a cost entry: the body says null, and the header does not say 0."""
    for cost, header in [(None, None), (0.0, "0.00000000"), (0.000141, "0.00014100")]:
        result = {**RESULT, "cost_usd": cost}
        assert sealgate_extra(result)["cost_usd"] == cost
        assert sealgate_headers(result).get("x-sealgate-cost-usd") == header


def test_every_character_outside_printable_ascii_is_dropped_whatever_else_is_there() -> None:
    """The whole-value check that skips the loop must agree with it on every character."""
    for code in [*range(0x00, 0x21), *range(0x7E, 0x100), 0x2028, 0xFEFF, 0x1F600]:
        char = chr(code)
        for value in (char, f"model{char}", f"{char}model{char}"):
            kept = sealgate_headers({"model": value})["x-sealgate-model"]
            assert kept == "".join(c for c in value if " " <= c <= "~"), (code, kept)
