"""Guardian logging: one line per record on stderr, every record redacted first.

On the handler, in order: libraries held at WARNING and values from outside escaped
(`protocol.logsafety`), then every secret redacted from the formatted message."""

from __future__ import annotations

import logging
import sys

from guardian import telemetry
from guardian.redact import RedactionFilter, Redactor
from protocol.logformat import JsonLines
from protocol.logsafety import protect

FORMAT = "%(asctime)s guardian[%(process)d] %(levelname)s %(name)s: %(message)s"


def configure(level: str, redactor: Redactor, log_format: str = "text") -> None:
    """`log_format` "json": JSON lines with the current span's ids (`protocol.logformat`)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines("guardian", telemetry.current_ids))
    else:
        handler.setFormatter(logging.Formatter(FORMAT))
    protect(handler)
    handler.addFilter(RedactionFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party loggers that would log request URLs or bodies stay quiet below WARNING
    # (the handler's floor drops them anyway; this spares formatting them).
    for name in ("httpx", "httpcore", "asyncio", "aiosqlite", "asyncpg"):
        logging.getLogger(name).setLevel(logging.WARNING)
