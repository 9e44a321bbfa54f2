"""Image parts of OpenAI-style messages, for providers that speak another format.

OpenAI's chat shape carries an image as `{"type": "image_url", "image_url": {"url": ...}}`
where the URL is a `data:` URL or an https URL. The guardian never fetches a URL itself (it
would be a keyed process making requests chosen by a caller): an https URL is passed on only
to a provider that fetches it (Anthropic's `url` source); for one that cannot (Gemini's
inline data), it is a 400 asking for a data URL. Data URLs are checked (type, base64, size)
before anything leaves.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from protocol.errors import InvalidParams

#: The largest decoded image accepted (Anthropic's own per-image limit is 5 MB).
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: Image types every supported provider accepts.
MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Image:
    """Either inline bytes (`media_type` and base64 `data`) or an https `url`."""

    media_type: str = ""
    data: str = ""
    url: str = ""


def image_of(part: dict[str, Any], provider: str, may_fetch: bool) -> Image:
    """The image in an `image_url` part; `may_fetch`: the provider fetches https URLs."""
    source = part.get("image_url")
    url = source.get("url") if isinstance(source, dict) else source
    if not isinstance(url, str) or not url:
        raise InvalidParams("messages: an image_url part needs image_url.url")
    if url.startswith("https://"):
        if may_fetch:
            return Image(url=url)
        raise InvalidParams(
            f"messages: provider {provider} cannot fetch image URLs, and SealGate does not"
            " fetch them for it: send the image as a data URL (data:image/png;base64,...)"
        )
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidParams(
            "messages: an image URL must be an https URL or a base64 data URL"
            " (data:image/png;base64,...)"
        )
    media_type, data = match.group("type").lower(), match.group("data").strip()
    if media_type not in MEDIA_TYPES:
        raise InvalidParams(
            f"messages: image type {media_type!r} is not supported; use one of"
            f" {', '.join(sorted(MEDIA_TYPES))}"
        )
    if len(data) > (MAX_IMAGE_BYTES * 4) // 3 + 4:
        raise InvalidParams(f"messages: an image is larger than {MAX_IMAGE_BYTES} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams("messages: an image data URL is not valid base64") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise InvalidParams(f"messages: an image is larger than {MAX_IMAGE_BYTES} bytes")
    return Image(media_type=media_type, data=data)


def anthropic_block(image: Image) -> dict[str, Any]:
    if image.url:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": image.media_type, "data": image.data},
    }


def gemini_part(image: Image) -> dict[str, Any]:
    return {"inlineData": {"mimeType": image.media_type, "data": image.data}}
