"""A tool's typed refusal as an MCP result: the text MCP clients read, and the type."""

from __future__ import annotations

from protocol.errors import ErrorCode, RateLimited
from sandbox.errors import SealedToolError


def test_a_refusal_is_an_error_result_with_its_code() -> None:
    refusal = SealedToolError.of(RateLimited("slow down", {"retry_after_s": 3}))
    result = refusal.to_result()
    assert result.is_error
    assert result.structured_content == {"error": {"code": "rate_limited", "message": "slow down"}}
    assert [block.text for block in result.content] == ["rate_limited: slow down"]  # type: ignore[union-attr]
    assert refusal.code is ErrorCode.RATE_LIMITED and refusal.data == {"retry_after_s": 3}
