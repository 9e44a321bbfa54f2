"""Secret redaction for every guardian log record and every provider error text.

A secret value must never leave the guardian: not in a log line, not in an error message
that echoes a provider's reply. `Redactor` replaces each configured secret value with
`[REDACTED]`; `RedactionFilter` applies it to log records at the handler, so it covers every
logger, including third-party ones, and tracebacks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REPLACEMENT = "[REDACTED]"
#: Shorter values would redact ordinary words; no real key is this short.
MIN_SECRET_LENGTH = 6


class Redactor:
    """Replaces known secret values in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REPLACEMENT, text)

    def redact_and_cut(self, text: str, limit: int) -> str:
        """Redact the whole text, then shorten it: cut first, and a secret on the cut would
        keep all but its last characters."""
        redacted = self.redact(text)
        return redacted if len(redacted) <= limit else redacted[: limit - 3] + "..."

    def __repr__(self) -> str:
        return "Redactor(<secrets hidden>)"


class RedactionFilter(logging.Filter):
    """Rewrites each record so its message and traceback carry no secret value."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redactor.redact(message)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = self.redactor.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True
