"""Image parts in OpenAI-style messages, translated for Anthropic and Gemini (issue 15,
item 9): data URLs inline, https URLs only where the provider fetches them, a size cap, and
never a fetch by the guardian."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from guardian.providers.adapters import AnthropicAdapter, GeminiAdapter, OpenAIAdapter
from guardian.providers.images import MAX_IMAGE_BYTES
from guardian.providers.types import ChatRequest
from protocol.errors import InvalidParams
from protocol.pyfun import ProviderConfig

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
DATA_URL = f"data:image/png;base64,{PNG}"


def provider(api: str) -> ProviderConfig:
    return ProviderConfig(
        name=api, kind="llm", api=api, base_url="https://x.example/v1", env_keys=("K",)
    )


def request(url: str) -> ChatRequest:
    return ChatRequest(
        model="m-1",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )


def body_of(adapter: Any, url: str) -> Any:
    return adapter.chat("KEY", request(url), stream=False).json


def test_anthropic_gets_a_base64_image_block() -> None:
    content = body_of(AnthropicAdapter(provider("anthropic")), DATA_URL)["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]


def test_anthropic_fetches_an_https_url_itself() -> None:
    url = "https://images.example/cat.png"
    content = body_of(AnthropicAdapter(provider("anthropic")), url)["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "url", "url": url}}


def test_gemini_gets_inline_data() -> None:
    parts = body_of(GeminiAdapter(provider("gemini")), DATA_URL)["contents"][0]["parts"]
    assert parts == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


def test_gemini_refuses_an_https_url_with_a_clear_message() -> None:
    with pytest.raises(InvalidParams, match=r"cannot fetch image URLs.*data URL"):
        body_of(GeminiAdapter(provider("gemini")), "https://images.example/cat.png")


def test_openai_compatible_providers_get_the_parts_unchanged() -> None:
    content = body_of(OpenAIAdapter(provider("openai")), DATA_URL)["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": DATA_URL}}


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (
            "data:image/png;base64," + base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 1)).decode(),
            "larger than",
        ),
        ("data:image/png;base64,not base64!", "not valid base64"),
        ("data:image/svg+xml;base64," + PNG, "not supported"),
        ("http://127.0.0.1/cat.png", "https URL or a base64 data URL"),
        ("file:///etc/passwd", "https URL or a base64 data URL"),
    ],
)
@pytest.mark.parametrize("api", ["anthropic", "gemini"])
def test_bad_images_are_refused_by_name(api: str, url: str, complaint: str) -> None:
    adapter = (
        AnthropicAdapter(provider(api)) if api == "anthropic" else GeminiAdapter(provider(api))
    )
    with pytest.raises(InvalidParams, match=complaint):
        body_of(adapter, url)
