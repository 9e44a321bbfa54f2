"""The X-API-Key advice of a 401: only on a Space, only when X-API-Key was not sent."""

from __future__ import annotations

from protocol.errors import Unauthenticated
from sandbox.auth import SPACE_ADVICE, advised


def scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "headers": list(headers)}


def test_the_advice_is_given_on_a_space_without_x_api_key() -> None:
    refused = Unauthenticated("invalid, expired or revoked credential")
    bearer = scope((b"authorization", b"Bearer hf_x"))
    assert advised(refused, bearer, "me-hub.hf.space").message == (
        "invalid, expired or revoked credential." + SPACE_ADVICE
    )
    assert advised(refused, bearer, None) is refused  # not a Space: nothing added
    with_key = scope((b"x-api-key", b"sg_x"))
    assert advised(refused, with_key, "me-hub.hf.space") is refused
