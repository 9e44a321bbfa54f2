"""The boundary where foreign exceptions become ours, and the small parsers behind it."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from guardian.calls.keys import KeyRing
from guardian.calls.outbound import retry_after_seconds, translated
from guardian.providers.adapters import AnthropicAdapter, GeminiAdapter, OpenAIAdapter
from guardian.providers.search import BraveAdapter, TavilyAdapter
from guardian.providers.sse import events
from guardian.providers.types import ProviderFailure
from guardian.secrets import Secret, Secrets
from protocol.pyfun import ProviderConfig

FOREIGN = [
    (TimeoutError(), "timeout"),
    (aiohttp.ServerTimeoutError(), "timeout"),
    (aiohttp.ClientOSError(), "connection"),
    (aiohttp.InvalidURL("x"), "connection"),
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


async def test_one_large_read_of_many_small_events_is_not_one_large_event() -> None:
    many = b"".join(b"data: %d\n\n" % n for n in range(500))  # ~4.5 KiB in one read
    got = [data async for _, data in events(_chunks(many), 1024)]
    assert got == [str(n) for n in range(500)]


async def test_sse_cap_counts_an_event_split_over_reads() -> None:
    with pytest.raises(ValueError, match="larger than"):
        async for _ in events(_chunks(*[b"data: " + b"x" * 100 + b"\n"] * 20 + [b"\n"]), 1024):
            pass


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def _deflate(data: bytes, raw: bool = False) -> bytes:
    import zlib

    compressor = zlib.compressobj(wbits=-15 if raw else 15)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", _gzip),
        ("deflate", _deflate),
        ("deflate", lambda d: _deflate(d, raw=True)),
        ("identity", lambda d: d),
        ("", lambda d: d),
    ],
)
def test_decoder_decodes_in_pieces(encoding: str, encode: object) -> None:
    from guardian.providers.decoding import Decoder

    body = b'{"text": "' + b"hello " * 5000 + b'"}'
    encoded = encode(body)  # type: ignore[operator]
    decoder = Decoder(encoding, 1 << 20)
    out = b"".join(decoder.feed(encoded[i : i + 7]) for i in range(0, len(encoded), 7))
    assert out + decoder.flush() == body


def test_decoder_caps_the_decoded_size_of_a_compression_bomb() -> None:
    from guardian.providers.decoding import Decoder

    bomb = _gzip(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KiB
    decoder = Decoder("gzip", 1 << 20)
    with pytest.raises(ProviderFailure, match="larger than") as info:
        decoder.feed(bomb)
    assert info.value.kind == "malformed" and decoder.total <= (1 << 20) + 1


@pytest.mark.parametrize(("encoding", "body"), [("br", b"x"), ("gzip", b"not gzip at all")])
def test_decoder_refuses_what_it_cannot_decode(encoding: str, body: bytes) -> None:
    from guardian.providers.decoding import Decoder

    with pytest.raises(ProviderFailure) as info:
        Decoder(encoding, 1024).feed(body)
    assert info.value.kind == "malformed"


async def test_outbound_decodes_gzip_plain_and_streamed() -> None:
    from guardian.calls.outbound import HttpOutbound
    from guardian.providers.types import HttpCall
    from tests.fakes.providers import FakeOpenAI

    fake = FakeOpenAI(name="openai", compression="gzip").start()
    outbound = HttpOutbound()
    try:
        call = HttpCall(
            method="POST",
            url=f"{fake.base}/v1/chat/completions",
            headers={"authorization": "Bearer k", "content-type": "application/json"},
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        body = await outbound.json("openai", call, timeout=5, max_bytes=1 << 20)
        assert body["choices"][0]["message"]["content"] == fake.reply_text
        with pytest.raises(ProviderFailure, match="larger than"):
            await outbound.json("openai", call, timeout=5, max_bytes=50)
        streamed = HttpCall(
            method="POST",
            url=call.url,
            headers=call.headers,
            json={**(call.json or {}), "stream": True},
        )
        async with outbound.stream("openai", streamed, timeout=5, max_bytes=1 << 20) as chunks:
            text = b"".join([chunk async for chunk in chunks])
        assert b"data: [DONE]" in text and b"Hello" in text
    finally:
        await outbound.aclose()
        fake.stop()
