"""Image URLs in chat messages never make the guardian fetch anything (issue 15, item 9).

The attack: a caller sends `image_url` parts naming an internal address (the guardian's
loopback, a metadata service) hoping the keyed process fetches it for a provider that needs
inline bytes. The guardian passes an https URL only to a provider that fetches it itself
(Anthropic) and refuses every other URL with a 400 before anything leaves.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.world import World


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A loopback listener that records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


def _chat(w: World, model: str, url: str) -> httpx.Response:
    return httpx.post(
        f"{w.stack.url}/v1/chat/completions",
        json={
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "describe"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        },
        timeout=30,
    )


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_an_internal_image_url_is_never_fetched(
    w: World, listener: tuple[int, list[object]], scheme: str
) -> None:
    port, accepted = listener
    url = f"{scheme}://127.0.0.1:{port}/secret.png"
    refused = _chat(w, "gemini-test", url)
    assert refused.status_code == 400, refused.text
    assert "data URL" in refused.json()["error"]["message"]
    # Anthropic is handed an https URL to fetch itself; plain http is refused for everyone.
    handed = _chat(w, "claude-test", url)
    if scheme == "https":
        assert handed.status_code == 200
        sent = w.anthropic.requests[-1].body["messages"][0]["content"][1]
        assert sent == {"type": "image", "source": {"type": "url", "url": url}}
    else:
        assert handed.status_code == 400
    assert accepted == [], "the gateway connected to the URL a caller named"
    assert not w.gemini.requests
