"""The boundary where foreign exceptions become ours, and the small parsers behind it."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from guardian.keys import KeyRing
from guardian.outbound import retry_after_seconds, translated
from guardian.providers.adapters import AnthropicAdapter, GeminiAdapter, OpenAIAdapter
from guardian.providers.search import BraveAdapter, TavilyAdapter
from guardian.providers.sse import events
from guardian.providers.types import ProviderFailure
from guardian.secrets import Secret, Secrets
from protocol.pyfun import ProviderConfig

FOREIGN = [
    (TimeoutError(), "timeout"),
    (httpx.ConnectTimeout("x"), "timeout"),
    (httpx.ReadTimeout("x"), "timeout"),
    (httpx.PoolTimeout("x"), "timeout"),
    (httpx.ConnectError("x"), "connection"),
    (httpx.ReadError("x"), "connection"),
    (httpx.RemoteProtocolError("x"), "connection"),
    (httpx.UnsupportedProtocol("x"), "connection"),
    (aiohttp.ClientConnectionError(), "connection"),
    (aiohttp.ServerDisconnectedError(), "connection"),
    (aiohttp.ClientPayloadError(), "connection"),
    (ConnectionResetError(), "connection"),
    (OSError(), "connection"),
]


@pytest.mark.parametrize(("exc", "kind"), FOREIGN, ids=[type(e).__name__ for e, _ in FOREIGN])
def test_every_foreign_failure_is_mapped(exc: BaseException, kind: str) -> None:
    with pytest.raises(ProviderFailure) as info, translated(5):
        raise exc
    assert info.value.kind == kind
    assert info.value.falls_back


def test_programming_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError), translated(5):
        raise KeyError("bug")


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_seconds(future) or 0) <= 30


def test_fallback_and_key_rules() -> None:
    for status in (401, 403, 408, 429, 500, 502, 503):
        assert ProviderFailure("status", "x", status=status).falls_back
    for status in (400, 404, 409, 413, 422):
        assert not ProviderFailure("status", "x", status=status).falls_back
    assert ProviderFailure("status", "x", status=401).blames_key
    assert not ProviderFailure("status", "x", status=500).blames_key


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
        await asyncio.sleep(0)


async def test_sse_events_across_chunk_boundaries() -> None:
    stream = _chunks(
        b'event: a\ndata: {"x"', b": 1}\n\n: comment\n", b"data: one\ndata: two\r\n\r\n"
    )
    assert [e async for e in events(stream, 1024)] == [("a", '{"x": 1}'), ("", "one\ntwo")]


async def test_sse_event_size_is_capped() -> None:
    with pytest.raises(ValueError, match="larger than"):
        async for _ in events(_chunks(b"data: " + b"x" * 2000), 1024):
            pass


def _provider(api: str, kind: str = "llm") -> ProviderConfig:
    return ProviderConfig(
        name=api, kind=kind, api=api, base_url="https://x.example/v1", env_keys=("K",)
    )


@pytest.mark.parametrize(
    "adapter",
    [
        AnthropicAdapter(_provider("anthropic")),
        GeminiAdapter(_provider("gemini")),
        OpenAIAdapter(_provider("openai")),
    ],
)
@pytest.mark.parametrize("body", [None, [], "text", {"content": "x"}, {"choices": {}}])
def test_llm_adapters_refuse_malformed_replies(adapter: object, body: object) -> None:
    with pytest.raises(ProviderFailure) as info:
        adapter.parse_chat(body)  # type: ignore[attr-defined]
    assert info.value.kind == "malformed"


def test_search_adapters_refuse_malformed_replies() -> None:
    with pytest.raises(ProviderFailure):
        BraveAdapter(_provider("brave", "search")).parse({"web": {"results": "x"}})
    with pytest.raises(ProviderFailure):
        TavilyAdapter(_provider("tavily", "search")).parse({"answer": "x"})


def test_gemini_puts_the_key_in_a_header_and_checks_the_model_id() -> None:
    from guardian.providers.types import ChatRequest

    call = GeminiAdapter(_provider("gemini")).chat(
        "SECRET",
        ChatRequest(model="g-1", messages=[{"role": "user", "content": "p"}]),
        stream=False,
    )
    assert call.headers["x-goog-api-key"] == "SECRET" and "SECRET" not in call.url
    with pytest.raises(ProviderFailure):
        GeminiAdapter(_provider("gemini")).chat(
            "k", ChatRequest(model="../admin?x", messages=[]), stream=False
        )


def test_keyring_rotates_and_sets_failing_keys_aside() -> None:
    secrets = Secrets({"A": Secret("a" * 8, "environment"), "B": Secret("b" * 8, "environment")})
    ring = KeyRing(("A", "B", "C"))
    first, second = ring.order(secrets), ring.order(secrets)
    assert [n for n, _ in first] == ["A", "B"] and [n for n, _ in second] == ["B", "A"]
    ring.mark_failing("A", "HTTP 401")
    assert [n for n, _ in ring.order(secrets)] == ["B", "A"]
    assert [n for n, _ in ring.order(secrets)] == ["B", "A"]
    assert ring.status()["A"].startswith("failing") and ring.status()["B"] == "ok"
