"""Content capture: the one explicit opt-in that puts prompts and answers on spans.

Off unless the guardian's environment says
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (the variable OpenTelemetry's GenAI
instrumentations read). Then each answered attempt's span carries `gen_ai.system_instructions`,
`gen_ai.input.messages` and `gen_ai.output.messages` in the conventions' JSON shape, each
redacted whole with the guardian's redactor (every configured secret value) and then cut to
`MAX_CONTENT_CHARS`. Tool arguments inside messages are content too, and are captured with
them only under the same opt-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from guardian import telemetry
from guardian.providers.types import ChatRequest, ChatResult

CAPTURE_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_CONTENT_CHARS = 16 * 1024

_capture = False


def configure(environ: Mapping[str, str]) -> bool:
    """Read the opt-in (at start-up, with the exporter); returns whether content is kept."""
    global _capture
    _capture = environ.get(CAPTURE_VARIABLE, "").strip().lower() == "true"
    return _capture


def disable() -> None:
    global _capture
    _capture = False


def wanted() -> bool:
    return _capture and telemetry.enabled()


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    return [{"type": "text", "content": json.dumps(content, ensure_ascii=False, default=str)}]


def record(
    span: telemetry.Span,
    request: ChatRequest,
    result: ChatResult,
    redact_and_cut: Callable[[str, int], str],
) -> None:
    """The attempt's content on its span, redacted then cut (only when opted in)."""
    if not wanted():
        return
    messages = [
        {"role": str(m.get("role", "user")), "parts": _parts(m.get("content", ""))}
        for m in request.messages
        if isinstance(m, dict)
    ]
    output = [
        {
            "role": "assistant",
            "parts": _parts(result.text)
            + [{"type": "tool_call", "arguments": call} for call in result.tool_calls],
            "finish_reason": result.finish_reason,
        }
    ]
    values = {
        "gen_ai.input.messages": messages,
        "gen_ai.output.messages": output,
    }
    if request.system:
        values["gen_ai.system_instructions"] = [{"type": "text", "content": request.system}]
    for key, value in values.items():
        text = json.dumps(value, ensure_ascii=False, default=str)
        span.set_attribute(key, redact_and_cut(text, MAX_CONTENT_CHARS))
