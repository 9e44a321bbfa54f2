"""Fetching a Client ID Metadata Document: the guardian's only keyless fetch of a URL a
caller chose, so it is fenced in.

- https only, no credentials, no cookies, no redirects followed, no proxy from the
  environment: a connection pool of its own (httpcore, httpx's transport layer), never the
  provider clients (`guardian/outbound.py`), which carry keys;
- the name is resolved here and every address it resolves to must be public unicast
  (`addresses.refusal`); the connection then goes to one of those checked addresses, while TLS
  still verifies the certificate against the name;
- `MAX_BYTES` and `TIMEOUT_S` cap the answer.

`TEST_SETTING` (off unless set to 1 in the guardian's environment) lets the end-to-end tests
serve a document over http on loopback; private and link-local addresses stay refused.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpcore

from guardian.oauth import addresses

TEST_SETTING = "SEALGATE_TEST_ONLY_ALLOW_LOOPBACK_CLIENT_METADATA"
MAX_BYTES = 16 * 1024
TIMEOUT_S = 5.0


class MetadataFetchError(Exception):
    """The document could not be fetched or is not acceptable; the message says why and
    carries nothing from the fetched body."""


def loopback_allowed(environ: Mapping[str, str]) -> bool:
    return environ.get(TEST_SETTING, "") == "1"


def url_problem(url: str, allow_loopback_http: bool) -> str | None:
    """Why `url` cannot be a metadata-document client_id (before any resolution)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a URL"
    if parts.fragment or parts.username or parts.password or not parts.hostname:
        return "must be an https URL with a host, no credentials and no fragment"
    if parts.path in ("", "/"):
        return "must have a path"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and allow_loopback_http:
        address = addresses.parse(parts.hostname)
        if address is not None and address.is_loopback:
            return None
    return "must be an https URL"


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the name itself and connects only to an address every check passed."""

    def __init__(self, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        checked = await checked_addresses(host, port, self.allow_loopback)
        return await self.inner.connect_tcp(checked[0], port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def checked_addresses(host: str, port: int, allow_loopback: bool) -> list[str]:
    """Every address `host` resolves to, if all are acceptable; else `MetadataFetchError`."""
    literal = addresses.parse(host.strip("[]"))
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise MetadataFetchError(f"cannot resolve {host!r}") from exc
        found = [a for a in (addresses.parse(str(info[4][0])) for info in infos) if a]
    if not found:
        raise MetadataFetchError(f"{host!r} resolves to no address")
    for address in found:
        why = addresses.refusal(address, allow_loopback)
        if why is not None:
            raise MetadataFetchError(f"{host!r} resolves to {why}; refused")
    return [str(a) for a in found]


async def fetch(url: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object at `url`, or `MetadataFetchError`."""
    allow = loopback_allowed(environ)
    problem = url_problem(url, allow)
    if problem is not None:
        raise MetadataFetchError(f"client_id {problem}")
    try:
        async with asyncio.timeout(TIMEOUT_S):
            return await _get(url, allow)
    except TimeoutError:
        raise MetadataFetchError(f"the document took longer than {TIMEOUT_S:g} s") from None


async def _get(url: str, allow_loopback: bool) -> dict[str, Any]:
    pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(),
        network_backend=_GuardedBackend(allow_loopback),
        max_connections=1,
        retries=0,
    )
    body = bytearray()
    try:
        async with (
            pool,
            pool.stream(
                "GET", url, headers=[(b"accept", b"application/json"), (b"user-agent", b"SealGate")]
            ) as response,
        ):
            if response.status != 200:
                raise MetadataFetchError(f"the document answered HTTP {response.status}")
            async for chunk in response.aiter_stream():
                body.extend(chunk)
                if len(body) > MAX_BYTES:
                    raise MetadataFetchError(f"the document is larger than {MAX_BYTES} bytes")
    except httpcore.TimeoutException as exc:
        raise MetadataFetchError("the document could not be fetched in time") from exc
    except httpcore.ConnectError as exc:
        raise MetadataFetchError("the document's host could not be reached") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise MetadataFetchError("the document could not be fetched") from exc
    except httpcore.UnsupportedProtocol as exc:
        raise MetadataFetchError("the document's URL is not usable") from exc
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataFetchError("the document is not JSON") from exc
    if not isinstance(document, dict):
        raise MetadataFetchError("the document is not a JSON object")
    return document
