"""`sealgate-ctl mcp-stdio --url URL`: a stdio MCP server that relays to a SealGate over HTTP.

For MCP clients that can only start a local command (Claude Desktop's classic
`mcpServers` entries, older IDE plugins). It is a client tool: it opens no admin socket,
needs no guardian on this machine and imports nothing of the guardian; it lives beside
`ctl.py` only so that one command serves operators and users alike. fastmcp's proxy
(`create_proxy`) does the relaying, so every MCP message the remote serves (tools, progress,
`tools/list_changed`) passes through without code of ours.

The token comes from an environment variable (`SEALGATE_TOKEN` unless `--token-env` names
another), never from the command line, where other local users could read it in `ps`. It
travels in clear only to this machine: plain `http://` is refused for any host but a loopback
one unless `--allow-insecure-http` says the network in between is trusted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import sys
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TOKEN_ENV = "SEALGATE_TOKEN"  # noqa: S105 (a variable name, not a secret)
#: A private Hugging Face Space's gate takes the person's HF token in Authorization;
#: SealGate's own token then travels in X-API-Key.
DEFAULT_GATE_TOKEN_ENV = "HF_TOKEN"  # noqa: S105 (a variable name)


class BridgeError(Exception):
    """The bridge cannot start; the message says what to change."""


class BridgeUnreachable(Exception):
    """The gateway did not answer the bridge's first request, or refused it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        required=True,
        help="the gateway's MCP endpoint: https://HOST/mcp (Streamable HTTP) or .../sse",
    )
    parser.add_argument(
        "--token-env",
        default=DEFAULT_TOKEN_ENV,
        help=f"environment variable holding the SealGate token (default {DEFAULT_TOKEN_ENV});"
        " unset or empty: no credential (a gateway in open mode)",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow a plain http:// URL to a host that is not this machine (the token then"
        " crosses the network in clear: only on a network you trust end to end)",
    )
    parser.add_argument(
        "--x-api-key",
        action="store_true",
        help="send the token as X-API-Key (a private Space), and the Space gate's token from"
        f" ${DEFAULT_GATE_TOKEN_ENV} as Authorization when it is set",
    )


def headers_for(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The HTTP headers every relayed request carries."""
    token = environ.get(args.token_env, "").strip()
    headers: dict[str, str] = {}
    if args.x_api_key:
        if token:
            headers["X-API-Key"] = token
        gate = environ.get(DEFAULT_GATE_TOKEN_ENV, "").strip()
        if gate:
            headers["Authorization"] = f"Bearer {gate}"
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def is_loopback(host: str) -> bool:
    """A host name that never leaves this machine: an address of the loopback network, or
    `localhost` (RFC 6761). No name is looked up: DNS could answer anything."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, allow_insecure_http: bool = False) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BridgeError(f"--url must be an http(s) URL such as https://HOST/mcp, not {url!r}")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname or ""):
        raise BridgeError(
            f"--url {url!r} is plain http to another machine: the token would cross the network"
            " in clear. Use https://, or add --allow-insecure-http if the network in between"
            " is yours end to end"
        )
    return url


def run(args: argparse.Namespace) -> int:
    """Serve MCP on stdin/stdout until the client closes them."""
    # Imported here: the operator commands never pay for fastmcp's import.
    from fastmcp import Client
    from fastmcp.client.transports import SSETransport, StreamableHttpTransport
    from fastmcp.server import create_proxy

    url = check_url(args.url, allow_insecure_http=args.allow_insecure_http)
    headers = headers_for(args, dict(os.environ))
    # stdout carries the protocol: every log line goes to stderr, warnings and worse only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    transport = (
        SSETransport(url, headers=headers)
        if urlsplit(url).path.rstrip("/").endswith("/sse")
        else StreamableHttpTransport(url, headers=headers)
    )
    client = Client(transport)
    # Fail at start, saying why, rather than serve an empty tool list a client cannot explain.
    version, instructions = asyncio.run(_check_reachable(client, url, headers))
    # A disconnected client: the proxy opens a fresh upstream session per request, so one
    # slow call never holds up another and a dropped connection heals by itself. It says
    # the gateway's version and instructions as its own, as the gateway does on HTTP.
    proxy = create_proxy(client, name="sealgate", version=version, instructions=instructions)
    asyncio.run(proxy.run_stdio_async(show_banner=False, log_level="WARNING"))
    return 0


async def _check_reachable(
    client: Any, url: str, headers: dict[str, str]
) -> tuple[str | None, str | None]:
    """Fail early if the gateway cannot be used; else its version and instructions."""
    try:
        async with client:
            await client.list_tools()
            info = client.server_info
            return (info.version if info is not None else None), client.instructions
    except Exception as exc:  # any failure of the first contact: say it in one line
        reason = await _refusal(url, headers) or str(exc) or type(exc).__name__
        raise BridgeUnreachable(f"cannot use the MCP endpoint at {url}: {reason}") from None


async def _refusal(url: str, headers: dict[str, str]) -> str | None:
    """The gateway's own words for a refusal (the MCP client keeps only "an error response");
    None when there is none to read."""
    import httpx2

    try:
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
            response = await http.post(url, json={}, headers={"accept": "application/json"})
    except httpx2.HTTPError:
        return None
    if response.status_code not in (401, 403):
        return None
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase
    hint = " (the token comes from $SEALGATE_TOKEN, or the variable --token-env names)"
    return f"{response.status_code}: {message}{hint if response.status_code == 401 else ''}"
