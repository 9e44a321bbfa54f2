"""Log filters both processes put on their log handler, so no record carries what it must not.

- `EscapeArgs`: the values given as a record's arguments are shown escaped
  (`protocol.printable`), so a user name or a provider's text cannot break a record into
  forged lines or send terminal sequences to whoever tails the log. The project's own format
  string is left alone: its line breaks are meant.
- `LibraryFloor`: a third-party logger speaks only at WARNING and above, whatever
  `HUB_LOG_LEVEL` says. Below that, libraries print values: aiosqlite's debug records carry
  every statement with its parameters (the sandbox's cached answers), httpx's carry URLs and
  headers. The project's own loggers (`sealgate.*`) keep the configured level.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from protocol.printable import printable

#: Loggers whose records are the project's own; every other logger is a library's.
PROJECT_LOGGER = "sealgate"
#: The lowest level at which a library's record is kept.
LIBRARY_MIN_LEVEL = logging.WARNING


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    shown = printable(text)
    if isinstance(value, str) or shown != text:
        return shown
    return value  # unchanged, so `%r` of an object keeps its own repr


class EscapeArgs(logging.Filter):
    """Escapes every argument of a record (the message is formatted from them later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_safe_arg(a) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _safe_arg(v) for k, v in args.items()}
        return True


def is_project_logger(name: str) -> bool:
    return name == PROJECT_LOGGER or name.startswith(PROJECT_LOGGER + ".")


class LibraryFloor(logging.Filter):
    """Drops a library's records below WARNING at the handler, so no level set on any
    logger (by the project, a library or a debugging operator) lets one through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= LIBRARY_MIN_LEVEL or is_project_logger(record.name)


def protect(handler: logging.Handler) -> None:
    """Both filters on `handler`, in the order they must run (before any redaction, which
    works on the formatted message)."""
    handler.addFilter(LibraryFloor())
    handler.addFilter(EscapeArgs())
