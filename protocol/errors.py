"""Every error SealGate raises on purpose, as one tree.

    SealGateError
    ├── RPCError                 a typed answer that crosses the wire as {"code", "message", "data"}
    │   ├── InvalidParams        the request's parameters do not fit the method's schema
    │   ├── Unauthenticated      no credential, or one the guardian does not accept
    │   ├── Forbidden            the principal may not do this
    │   ├── RateLimited          too many calls; data.retry_after_s says when to come back
    │   ├── BudgetExceeded       the principal's spending limit is reached
    │   ├── NotFound             no such tool, provider, model, user ...
    │   ├── ProviderError        every provider tried failed; data.status, data.provider
    │   ├── Timeout              the call ran out of time
    │   ├── Unavailable          the guardian (or every provider) cannot be reached now
    │   │   └── UpstreamUnavailable  an upstream MCP server cannot be reached; data.upstream
    │   └── Internal             a bug on our side; the message never carries a traceback
    └── ProtocolError            the peer broke the wire protocol: the connection is closed
        ├── FrameTooLarge        an announced frame length over the configured maximum
        ├── MalformedFrame       bytes that are not one msgpack object of a known shape
        └── ConnectionLost       the other side went away mid-call

`RPCError` is "the request failed"; `ProtocolError` is "the peer misbehaved". Programming
mistakes (calling a closed client, say) raise `RuntimeError` with a full sentence instead.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    INVALID_PARAMS = "invalid_params"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXCEEDED = "budget_exceeded"
    NOT_FOUND = "not_found"
    PROVIDER_ERROR = "provider_error"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class SealGateError(Exception):
    """Base class of every error SealGate raises on purpose."""


class RPCError(SealGateError):
    """An error answer of a sealed call; safe to show to the caller."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data or {}

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.data:
            wire["data"] = self.data
        return wire

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidParams(RPCError):
    """The request's parameters do not fit the method's schema."""

    code = ErrorCode.INVALID_PARAMS


class Unauthenticated(RPCError):
    """No credential, or one the guardian does not accept."""

    code = ErrorCode.UNAUTHENTICATED


class Forbidden(RPCError):
    """The principal may not do this."""

    code = ErrorCode.FORBIDDEN


class RateLimited(RPCError):
    """Too many calls; `data["retry_after_s"]` says when to try again."""

    code = ErrorCode.RATE_LIMITED


class BudgetExceeded(RPCError):
    """The principal's spending limit is reached."""

    code = ErrorCode.BUDGET_EXCEEDED


class NotFound(RPCError):
    """No such tool, provider, model or user."""

    code = ErrorCode.NOT_FOUND


class ProviderError(RPCError):
    """Every provider tried failed; `data` names the provider and its HTTP status."""

    code = ErrorCode.PROVIDER_ERROR


class Timeout(RPCError):
    """The call ran out of time."""

    code = ErrorCode.TIMEOUT


class Unavailable(RPCError):
    """The guardian, or every provider, cannot be reached now."""

    code = ErrorCode.UNAVAILABLE


class UpstreamUnavailable(Unavailable):
    """An upstream MCP server cannot be reached now, though the guardian answers.

    Its code stays `unavailable` (the wire's list of codes is fixed); `data["upstream"]`
    names the server, so a client tells it apart from an unreachable guardian without
    reading the message."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message, data)
        if not isinstance(self.data.get("upstream"), str):
            raise ValueError("UpstreamUnavailable needs data['upstream'], the server's name")

    @classmethod
    def of(cls, server: str, message: str) -> UpstreamUnavailable:
        return cls(message, {"upstream": server})

    @property
    def server(self) -> str:
        return str(self.data["upstream"])


class Internal(RPCError):
    """A bug on our side; details are in the guardian's log, never in the message."""

    code = ErrorCode.INTERNAL


class ProtocolError(SealGateError):
    """The peer broke the wire protocol; the connection it came on is closed."""


class FrameTooLarge(ProtocolError):
    """A frame announced a length over the configured maximum."""


class MalformedFrame(ProtocolError):
    """Bytes that are not one msgpack object of a known message shape."""


class ConnectionLost(ProtocolError):
    """The other side closed the connection while calls were in flight."""


_BY_CODE: dict[str, type[RPCError]] = {
    cls.code.value: cls
    for cls in (
        InvalidParams,
        Unauthenticated,
        Forbidden,
        RateLimited,
        BudgetExceeded,
        NotFound,
        ProviderError,
        Timeout,
        Unavailable,
        Internal,
    )
}


def error_from_wire(wire: object) -> RPCError:
    """Rebuild the typed error a response carries; anything odd becomes `Internal`."""
    if not isinstance(wire, dict):
        return Internal("the guardian sent an error of unknown shape")
    code = wire.get("code")
    message = wire.get("message")
    data = wire.get("data")
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None or not isinstance(message, str):
        return Internal("the guardian sent an error of unknown shape")
    if not isinstance(data, dict):
        data = None
    if cls is Unavailable and data is not None and isinstance(data.get("upstream"), str):
        cls = UpstreamUnavailable
    return cls(message, data)
