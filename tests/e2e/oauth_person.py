"""The person and the client of an OAuth sign-in, for tests: the official `mcp` SDK's
`OAuthClientProvider` is the client; `Person` plays the browser (opens the authorization URL,
signs in, allows or denies) and hands the redirect back as the SDK's callback."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

#: Where the client says it listens for the code (nothing does: the Person catches it).
REDIRECT_URI = "http://127.0.0.1:9/callback"
TICKET = re.compile(r"name=ticket value='([^']+)'")


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Person:
    """Signs in on the authorization page and answers the consent page."""

    def __init__(self, username: str, password: str, approve: bool = True) -> None:
        self.username = username
        self.password = password
        self.approve = approve
        self.pages: list[str] = []  # what the person saw
        self.saw_consent = False
        self.location = ""

    async def redirect_handler(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            page = await http.get(url)
            assert page.status_code == 200, page.text
            self.pages.append(page.text)
            signed_in = await http.post(
                url, data={"username": self.username, "password": self.password}
            )
            if signed_in.status_code == 200:  # the consent page
                self.saw_consent = True
                self.pages.append(signed_in.text)
                match = TICKET.search(signed_in.text)
                assert match, signed_in.text
                base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
                signed_in = await http.post(
                    f"{base}/oauth/consent",
                    data={"ticket": match.group(1), "approve": "yes" if self.approve else "no"},
                )
            assert signed_in.status_code == 303, signed_in.text
            self.location = signed_in.headers["location"]

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(self.location).query)
        if "error" in query:
            raise AssertionError(f"authorization refused: {query}")
        return AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0]
        )


def provider_for(
    base_url: str,
    person: Person,
    storage: MemoryStorage,
    *,
    metadata_url: str | None = None,
    client_name: str = "SealGate test client",
) -> OAuthClientProvider:
    """The SDK's provider. With `metadata_url` (http on loopback, allowed by the stack's
    test-only setting) the client identifies itself by a metadata document: the SDK accepts
    only https URLs in its constructor, so the loopback one is set after it."""
    provider = OAuthClientProvider(
        server_url=f"{base_url}/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
            client_name=client_name,
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=person.redirect_handler,
        callback_handler=person.callback_handler,
        client_metadata_url="https://client.example/metadata.json" if metadata_url else None,
    )
    if metadata_url:
        provider.context.client_metadata_url = metadata_url
    return provider


@contextlib.asynccontextmanager
async def oauth_mcp(
    base_url: str, provider: OAuthClientProvider, mode: str = "legacy"
) -> AsyncIterator[Client]:
    """The official client on /mcp, authenticated by `provider`; `mode="auto"` speaks the
    2026-07-28 revision (stateless), "legacy" the initialize handshake."""
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            yield client


def document_for(client_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_name": "Metadata document client",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **extra,
    }


@contextlib.contextmanager
def metadata_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A loopback HTTP server serving client metadata documents: (base URL, path -> doc)."""
    documents: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            document = documents.get(self.path)
            body = json.dumps(document).encode()
            self.send_response(200 if document is not None else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", documents
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
