"""How the sandbox keeps a guardian's typed error: as a tool error, and as an HTTP status."""

from __future__ import annotations

from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult

from protocol.errors import ErrorCode, RPCError

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


class SealedToolError(ToolError):
    """A tool's refusal that keeps its typed code. MCP has no error code for a tool: an MCP
    client gets `code: message` as the error's text and the typed `{"error": {"code",
    "message"}}` as its structured content (`to_result`); `POST /api` answers the code and
    message themselves. Nothing is ever parsed back out of the text."""

    def __init__(self, code: ErrorCode, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.data = data or {}

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}

    def to_result(self) -> ToolResult:
        """The refusal as an MCP tool result (an error result, its text and its type)."""
        return ToolResult(
            content=str(self), structured_content={"error": self.to_wire()}, is_error=True
        )

    @classmethod
    def of(cls, exc: RPCError) -> SealedToolError:
        """The guardian's typed error, as a tool error."""
        return cls(exc.code, exc.message, exc.data)
