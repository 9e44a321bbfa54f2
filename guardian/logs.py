"""Guardian logging: one line per record on stderr, every record redacted first."""

from __future__ import annotations

import logging
import sys

from guardian.redact import RedactionFilter, Redactor

FORMAT = "%(asctime)s guardian[%(process)d] %(levelname)s %(name)s: %(message)s"


def configure(level: str, redactor: Redactor) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactionFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party loggers that would log request URLs or bodies stay quiet below WARNING.
    for name in ("httpx", "httpcore", "asyncio", "aiosqlite"):
        logging.getLogger(name).setLevel(logging.WARNING)
