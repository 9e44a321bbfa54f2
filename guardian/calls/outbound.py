"""Outbound HTTP to providers: one pooled client per provider, deadlines, a size cap, and the
one place where foreign exceptions (aiohttp, asyncio timeouts) become ours.

One HTTP stack, aiohttp, used directly: measured side by side in `make bench` (see
bench/RESULTS.md), httpx's default transport collapses under concurrency and httpx over the
`httpx-aiohttp` transport runs two stacks per call for no gain over aiohttp itself.
Environment proxies are ignored: where a sealed call goes is decided by `.pyfun` alone.
Bodies are read raw and decoded here (`Decoder`), so a cap holds on the decoded size.

`Outbound` is the interface the call path sends through; `HttpOutbound` is the real one,
and `guardian.calls.memory_outbound.MemoryOutbound` answers from a script in memory, so the
whole fallback, retry, key and budget matrix runs as unit tests that open no socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import aiohttp

from guardian.providers.decoding import ACCEPT_ENCODING, Decoder
from guardian.providers.types import HttpCall, ProviderFailure

DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Connections per provider, and how long an idle one is kept.
MAX_CONNECTIONS = 200
KEEPALIVE_S = 30.0
#: Foreign exceptions that mean "the connection failed"; timeouts are caught separately.
_CONNECTION_ERRORS = (aiohttp.ClientError, OSError)


#: What aiohttp buffers of a streamed reply before it stops reading the socket is about
#: twice this (its default is 64 KiB, and a burst of small chunked events went several
#: hundred KiB past it): a stream whose reader waits (its window is full) holds little more
#: here, and the rest of the answer waits in the kernel and at the provider.
STREAM_READ_BUFSIZE = 16 * 1024


def make_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        auto_decompress=False,  # decoded by Decoder, under the size cap
        timeout=aiohttp.ClientTimeout(total=None),  # every call brings its own deadline
        skip_auto_headers=("User-Agent",),
    )


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


def status_failure(status: int, headers: Mapping[str, str], body: bytes) -> ProviderFailure:
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
    except TimeoutError:
        raise ProviderFailure("timeout", f"timed out after {timeout:g} s") from None
    except _CONNECTION_ERRORS as exc:
        raise ProviderFailure("connection", f"connection failed ({type(exc).__name__})") from None


class Outbound(Protocol):
    """Where a provider call goes out: a JSON reply, or a stream of body chunks."""

    async def json(
        self, provider: str, call: HttpCall, *, timeout: float, max_bytes: int
    ) -> Any: ...

    def stream(
        self, provider: str, call: HttpCall, *, timeout: float, max_bytes: int
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...

    async def aclose(self) -> None: ...


class HttpOutbound:
    """The pooled HTTP clients, one per provider name."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, provider: str) -> aiohttp.ClientSession:
        session = self._sessions.get(provider)
        if session is None:
            session = self._sessions[provider] = make_session()
        return session

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def _send(
        self, provider: str, call: HttpCall, read_bufsize: int | None = None
    ) -> aiohttp.ClientResponse:
        """Send `call` on the provider's pooled client; the body is left to the caller."""
        body = call.encoded().body
        return await self._session(provider).request(
            call.method,
            call.url,
            # only what Decoder decodes, whatever aiohttp would advertise by default
            headers={"accept-encoding": ACCEPT_ENCODING, **call.headers},
            data=body,
            params=call.params,
            allow_redirects=False,
            read_bufsize=read_bufsize,
        )

    @staticmethod
    async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
        """The whole body, decoded, at most `max_bytes` of it after decoding."""
        decoder = Decoder(response.headers.get("content-encoding", ""), max_bytes)
        body = bytearray()
        async for chunk in response.content.iter_any():
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
                    response.release()
        if response.status >= 400:
            raise status_failure(response.status, response.headers, body)
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
                response = await self._send(provider, call, STREAM_READ_BUFSIZE)
        finished = False
        try:
            if response.status >= 400:
                with translated(timeout):
                    async with asyncio.timeout(timeout):
                        body = await self._read_capped(response, 64 * 1024)
                raise status_failure(response.status, response.headers, body)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                raise ProviderFailure("malformed", "malformed reply: a stream that is not SSE")
            yield self._chunks(response, timeout, max_bytes)
            finished = response.content.at_eof()
        finally:
            # A stream left before its end is cut, so the provider stops its work; one read
            # to the end goes back to the pool.
            if finished:
                response.release()
            else:
                response.close()

    @staticmethod
    async def _chunks(
        response: aiohttp.ClientResponse, timeout: float, max_bytes: int
    ) -> AsyncIterator[bytes]:
        decoder = Decoder(response.headers.get("content-encoding", ""), max_bytes)
        while True:
            with translated(timeout):
                async with asyncio.timeout(timeout):
                    chunk = await response.content.readany()
            if not chunk:
                tail = decoder.flush()
                if tail:
                    yield tail
                return
            decoded = decoder.feed(chunk)
            if decoded:
                yield decoded
