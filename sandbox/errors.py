"""How the sandbox turns a guardian's typed error into an HTTP status."""

from __future__ import annotations

from protocol.errors import ErrorCode

HTTP_STATUS: dict[str, int] = {
    ErrorCode.INVALID_PARAMS: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.BUDGET_EXCEEDED: 429,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}


def http_status(code: str) -> int:
    return HTTP_STATUS.get(code, 500)
