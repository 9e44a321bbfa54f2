"""OpenAI's error shape on every `/v1` answer, whichever layer refused the request.

The gateway's middleware (auth, body limits, Host/Origin/content type, guardian down)
answers `{"error": {"code", "message"}}`; OpenAI SDKs and agent frameworks expect
`{"error": {"message", "type", "param", "code"}}` with OpenAI's type names. This plain ASGI
middleware rewrites error bodies under `/v1` only; responses it does not recognise, and
every success, pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.middleware import content_type

#: OpenAI's `type` for our error codes and for the statuses middleware answers with.
ERROR_TYPE = {
    "invalid_params": "invalid_request_error",
    "payload_too_large": "invalid_request_error",
    "request_timeout": "invalid_request_error",
    "unsupported_media_type": "invalid_request_error",
    "unauthenticated": "authentication_error",
    "forbidden": "permission_error",
    "not_found": "invalid_request_error",
    "model_not_found": "invalid_request_error",
    "rate_limited": "rate_limit_error",
    "budget_exceeded": "insufficient_quota",
    "provider_error": "api_error",
    "timeout": "timeout_error",
    "unavailable": "api_error",
    "internal": "api_error",
}
STATUS_TYPE = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai_body(status: int, error: dict[str, Any]) -> dict[str, Any]:
    """`{"code", "message"}` (and any fields already OpenAI's) -> OpenAI's four fields."""
    code = str(error.get("code") or "")
    kind = error.get("type") or ERROR_TYPE.get(code) or STATUS_TYPE.get(status)
    if kind is None:
        kind = "invalid_request_error" if status < 500 else "api_error"
    return {
        "error": {
            "message": str(error.get("message") or ""),
            "type": kind,
            "param": error.get("param"),
            "code": code or kind,
        }
    }


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class OpenAIErrors:
    """Rewrites JSON error responses under `/v1` into OpenAI's shape (but under `exclude`:
    the routes of another dialect, rewritten into its own shape by a subclass)."""

    def __init__(self, app: ASGIApp, prefix: str = "/v1", exclude: tuple[str, ...] = ()) -> None:
        self.app = app
        self.prefix = prefix
        self.exclude = exclude

    def rewrite(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        """The error body in this dialect's shape."""
        return openai_body(status, error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not _under(path, self.prefix) or any(_under(path, e) for e in self.exclude):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                is_json = content_type(message).startswith(b"application/json")
                if message["status"] >= 400 and is_json:
                    held = message  # wait for the body (small: an error)
                    return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._send_rewritten(send, held, b"".join(chunks))
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)

    async def _send_rewritten(self, send: Send, start: Message, raw: bytes) -> None:
        try:
            error = json.loads(raw).get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, dict):
            raw = json.dumps(self.rewrite(start["status"], error)).encode()
        headers = [(k, v) for k, v in start.get("headers") or [] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": raw})
