"""`HUB_LOG_FORMAT=json`: each log record as one JSON line, for log shippers, with the trace
and span ids of the span it was written in (when tracing is on).

Both processes use it with their own way to name the current span; the guardian's records
are redacted before they reach it (the redaction filter runs on the handler first), and the
values in a message were escaped there too (`protocol.logsafety`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

#: (trace id, span id) as lower-case hex, or None outside a span.
SpanIds = Callable[[], tuple[str, str] | None]
FORMATS = ("text", "json")


def log_format(environ: Mapping[str, str]) -> str:
    """`HUB_LOG_FORMAT`: "json" or "text" (anything else is text)."""
    value = environ.get("HUB_LOG_FORMAT", "text").strip().lower()
    return value if value in FORMATS else "text"


class JsonLines(logging.Formatter):
    """One JSON object per record: time, process, pid, level, logger, message, and
    `trace_id`/`span_id` inside a span, `exception` when the record carries one."""

    def __init__(self, process: str, span_ids: SpanIds = lambda: None) -> None:
        super().__init__()
        self.process = process
        self.span_ids = span_ids

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "process": self.process,
            "pid": record.process,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = self.span_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)
