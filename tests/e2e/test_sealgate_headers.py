"""`x-sealgate-*` headers on `/v1/chat/completions`, read through the official `openai` SDK."""

from __future__ import annotations

from openai import OpenAI

from tests.e2e.world import World
from tests.fakes.base import Behaviour


def sdk(w: World) -> OpenAI:
    return OpenAI(base_url=f"{w.stack.url}/v1", api_key="unused-in-open-mode", max_retries=0)


def test_a_completion_carries_provider_fallback_tokens_and_cost_headers(w: World) -> None:
    w.anthropic.behave(Behaviour(status=503), Behaviour(status=503))  # both keys: fall back
    raw = sdk(w).chat.completions.with_raw_response.create(
        model="claude-test", messages=[{"role": "user", "content": "Hello"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == w.gemini.reply_text
    headers = raw.headers
    assert headers["x-sealgate-provider"] == "gemini"
    assert headers["x-sealgate-model"] == completion.model
    assert headers["x-sealgate-fallback-path"].startswith("anthropic:")
    assert headers["x-sealgate-input-tokens"] == "9"
    assert headers["x-sealgate-output-tokens"] == "5"
    # gemini-test has no cost entry: the body says null and the header is left out, not 0.
    assert completion.model_extra["sealgate"]["cost_usd"] is None
    assert "x-sealgate-cost-usd" not in headers
    assert float(headers["x-sealgate-latency-ms"]) > 0.0


def test_a_priced_completion_reports_its_cost(w: World) -> None:
    raw = sdk(w).chat.completions.with_raw_response.create(
        model="claude-test", messages=[{"role": "user", "content": "Hello"}]
    )
    # claude-test: 3 USD / 1M input, 15 USD / 1M output; the fake reports 12 in, 7 out.
    assert raw.headers["x-sealgate-provider"] == "anthropic"
    assert raw.headers["x-sealgate-fallback-path"] == ""
    assert float(raw.headers["x-sealgate-cost-usd"]) == (12 * 3 + 7 * 15) / 1_000_000


def test_a_stream_carries_the_same_map_in_its_final_chunk(w: World) -> None:
    chunks = list(
        sdk(w).chat.completions.create(
            model="claude-test", messages=[{"role": "user", "content": "Hello"}], stream=True
        )
    )
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1
    extra = final[0].model_extra["sealgate"]
    assert extra["provider"] == "anthropic"
    assert extra["model"] == "claude-test"
    assert extra["fallback_path"] == []
    assert extra["input_tokens"] == 12 and extra["output_tokens"] == 7
    assert extra["cost_usd"] == (12 * 3 + 7 * 15) / 1_000_000
    assert all("sealgate" not in (c.model_extra or {}) for c in chunks if c is not final[0])
