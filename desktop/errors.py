"""Every way a hub call can fail, as the states the app shows.

    HubError
    ├── HubUnreachable       no answer, or the hub answers that its guardian is away
    ├── CredentialRefused    401: a wrong token, an expired session, no credential
    ├── NotAllowed           403: the credential is good, the hub's policy refuses this
    ├── BudgetSpent          429 budget_exceeded
    ├── RateLimited          429 rate_limited, with the retry time
    ├── ProviderUnavailable  502 / 503 / 504: every provider in the chain failed
    └── RequestRefused       400 / 404 / 413 / 415 / 422: the request itself is wrong

`from_response` is the one place an HTTP answer becomes one of these.
"""

from __future__ import annotations

import json
from typing import Any


class HubError(Exception):
    """The base: `title` names the state, the message says what to do."""

    title = "Request failed"


class HubUnreachable(HubError):
    title = "Hub unreachable"


class CredentialRefused(HubError):
    title = "Credential refused"


class NotAllowed(HubError):
    """A 403: who you are is known and accepted; your role may not do this (a tool, a
    provider or a model it does not grant, or an OAuth scope it lacks)."""

    title = "Not allowed"


class BudgetSpent(HubError):
    title = "Budget spent"


class RateLimited(HubError):
    title = "Rate limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(HubError):
    title = "Provider unavailable"


class RequestRefused(HubError):
    title = "Request refused"


def _error_of(body: Any) -> tuple[str, str]:
    """(code, message) from SealGate's `{"error": {...}}` or OpenAI's shape."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("code") or error.get("type") or ""), str(error.get("message", ""))
    return "", ""


def _retry_after(headers: Any, default: float = 60.0) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", default)))
    except (TypeError, ValueError):
        return default


def from_response(status: int, text: str, headers: Any) -> HubError:
    """The typed error for a non-2xx answer of the hub."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    code, message = _error_of(body)
    message = message or text[:300] or f"HTTP {status}"
    if status == 429 or code in ("rate_limited", "budget_exceeded"):
        if code in ("budget_exceeded", "insufficient_quota"):
            return BudgetSpent(f"{message} (ask the hub's operator for more)")
        seconds = _retry_after(headers)
        return RateLimited(f"try again in {seconds:g} s ({message})", seconds)
    if status == 401:
        return CredentialRefused(f"{message} (check the token, or sign in again)")
    if status == 403:
        return NotAllowed(f"{message} (the hub's policy for your role; ask its operator)")
    if status == 503 and (
        "guardian" in message or (isinstance(body, dict) and body.get("status") == "unavailable")
    ):
        return HubUnreachable(f"the hub answers but cannot serve requests now: {message}")
    if status in (502, 503, 504):
        return ProviderUnavailable(f"no provider could answer: {message}")
    return RequestRefused(f"HTTP {status}: {message}")


def from_stream_event(event: dict[str, Any]) -> HubError:
    """An error event in the middle of a stream (the status was already 200)."""
    code, _ = _error_of(event)
    status = {
        "unauthenticated": 401,
        "forbidden": 403,
        "rate_limited": 429,
        "budget_exceeded": 429,
        "provider_error": 502,
        "unavailable": 503,
        "timeout": 504,
    }.get(code, 400)
    return from_response(status, json.dumps(event), {})
