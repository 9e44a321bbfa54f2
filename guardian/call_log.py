"""`[DEBUG] LOG_REQUESTS` / `LOG_RESPONSES`: one log line per provider request and reply.

Metadata only: tool, provider, model, sizes, tokens, status, time. Never the prompt, the
answer, a header or a key, so turning these on cannot put a secret or a user's text into the
logs (the redaction filter stays underneath anyway).
"""

from __future__ import annotations

import logging

from protocol.pyfun import DebugConfig

logger = logging.getLogger("sealgate.guardian.calls")


def _field(text: str) -> str:
    """A value as one log token: a caller-named model may hold spaces or line breaks."""
    return text if text and text.isprintable() and " " not in text else repr(text)


def log_request(
    debug: DebugConfig, *, tool: str, provider: str, model: str, input_bound: int, stream: bool
) -> None:
    if debug.log_requests:
        logger.info(
            "request tool=%s provider=%s model=%s input_tokens_max=%d stream=%s",
            tool,
            provider,
            _field(model) if model else "-",
            input_bound,
            stream,
        )


def log_response(
    debug: DebugConfig,
    *,
    tool: str,
    provider: str,
    model: str,
    outcome: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    elapsed_ms: float = 0.0,
) -> None:
    if debug.log_responses:
        logger.info(
            "response tool=%s provider=%s model=%s outcome=%s input_tokens=%d"
            " output_tokens=%d elapsed_ms=%.0f",
            tool,
            provider,
            _field(model) if model else "-",
            outcome,
            input_tokens,
            output_tokens,
            elapsed_ms,
        )
