"""Outbound HTTP to providers: one pooled client per provider, deadlines, a size cap, and the
one place where foreign exceptions (httpx, aiohttp, asyncio timeouts) become ours.

The HTTP API is httpx's. Its default transport is slow under concurrency (see
bench/RESULTS.md), so the client runs on `httpx-aiohttp`'s transport unless
`SEALGATE_HTTP_TRANSPORT=httpx` asks for the default one (the benchmark compares both).
Environment proxies are ignored: where a sealed call goes is decided by `.pyfun` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from guardian.providers.decoding import ACCEPT_ENCODING, Decoder
from guardian.providers.types import HttpCall, ProviderFailure

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
TRANSPORTS = ("aiohttp", "httpx")
_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
#: Foreign exceptions that mean "the connection failed"; timeouts are caught separately.
_CONNECTION_ERRORS = (httpx.TransportError, aiohttp.ClientError, OSError)


def make_client(transport: str) -> httpx.AsyncClient:
    if transport not in TRANSPORTS:
        raise RuntimeError(f"unknown HTTP transport {transport!r}; use one of {TRANSPORTS}.")
    options: dict[str, Any] = {"timeout": None, "follow_redirects": False, "trust_env": False}
    if transport == "aiohttp":
        return httpx.AsyncClient(
            transport=AiohttpTransport(limits=_LIMITS, trust_env=False), **options
        )
    return httpx.AsyncClient(limits=_LIMITS, **options)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_text(body: bytes) -> str:
    """The whole error text of a reply, uncut: a cut made before redaction could leave part
    of a secret the provider echoed. The router redacts it, then shortens it."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str):
        return message
    return body.decode("utf-8", errors="replace").strip()


def _status_failure(status: int, headers: httpx.Headers, body: bytes) -> ProviderFailure:
    text = _error_text(body)
    return ProviderFailure(
        "status",
        f"HTTP {status}" + (f": {text}" if text else ""),
        status=status,
        retry_after=retry_after_seconds(headers.get("retry-after")),
    )


@contextlib.contextmanager
def translated(timeout: float) -> Any:
    """Turn every foreign failure of an outbound call into a `ProviderFailure`."""
    try:
        yield
    except (TimeoutError, httpx.TimeoutException):
        raise ProviderFailure("timeout", f"timed out after {timeout:g} s") from None
    except _CONNECTION_ERRORS as exc:
        raise ProviderFailure("connection", f"connection failed ({type(exc).__name__})") from None


class Outbound:
    """The pooled HTTP clients, one per provider name."""

    def __init__(self, transport: str = "aiohttp") -> None:
        self.transport = transport
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, provider: str) -> httpx.AsyncClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = make_client(self.transport)
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def _send(self, provider: str, call: HttpCall) -> httpx.Response:
        """Send `call` on the provider's pooled client; the body is left to the caller."""
        client = self._client(provider)
        request = client.build_request(
            call.method,
            call.url,
            # only what Decoder decodes, whatever httpx would advertise by default
            headers={"accept-encoding": ACCEPT_ENCODING, **call.headers},
            json=call.json,
            params=call.params,
        )
        return await client.send(request, stream=True)

    async def _read_capped(self, response: httpx.Response, max_bytes: int) -> bytes:
        """The whole body, decoded, at most `max_bytes` of it after decoding."""
        decoder = Decoder(response.headers.get("content-encoding", ""), max_bytes)
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += decoder.feed(chunk)
        body += decoder.flush()
        return bytes(body)

    async def json(self, provider: str, call: HttpCall, *, timeout: float, max_bytes: int) -> Any:
        """Send `call`; return the decoded JSON reply or raise `ProviderFailure`."""
        with translated(timeout):
            async with asyncio.timeout(timeout):
                response = await self._send(provider, call)
                try:
                    body = await self._read_capped(response, max_bytes)
                finally:
                    await response.aclose()
        if response.status_code >= 400:
            raise _status_failure(response.status_code, response.headers, body)
        try:
            return json.loads(body)
        except ValueError:
            raise ProviderFailure("malformed", "reply is not JSON") from None

    @contextlib.asynccontextmanager
    async def stream(
        self, provider: str, call: HttpCall, *, timeout: float, max_bytes: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a streaming call; yields an iterator of body chunks.

        `timeout` bounds the wait for the response head; each chunk then has `timeout` too.
        Leaving the block closes the connection, which is how a cancelled stream stops the
        provider's work.
        """
        with translated(timeout):
            async with asyncio.timeout(timeout):
                response = await self._send(provider, call)
        try:
            if response.status_code >= 400:
                with translated(timeout):
                    body = await self._read_capped(response, 64 * 1024)
                raise _status_failure(response.status_code, response.headers, body)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                raise ProviderFailure("malformed", "malformed reply: a stream that is not SSE")
            yield self._chunks(response, timeout, max_bytes)
        finally:
            with contextlib.suppress(*_CONNECTION_ERRORS, TimeoutError):
                await response.aclose()

    async def _chunks(
        self, response: httpx.Response, timeout: float, max_bytes: int
    ) -> AsyncIterator[bytes]:
        decoder = Decoder(response.headers.get("content-encoding", ""), max_bytes)
        iterator = response.aiter_raw().__aiter__()
        while True:
            with translated(timeout):
                async with asyncio.timeout(timeout):
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        tail = decoder.flush()
                        if tail:
                            yield tail
                        return
            decoded = decoder.feed(chunk)
            if decoded:
                yield decoded
