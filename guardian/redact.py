"""Secret redaction for every guardian log record and every provider error text.

A secret value must never leave the guardian: not in a log line, not in an error message
that echoes a provider's reply. `Redactor` replaces each configured secret value with
`[REDACTED]`; `RedactionFilter` applies it to log records at the handler, so it covers every
logger, including third-party ones, and tracebacks.

Two rules keep a secret whole out of every text:

- Text from outside is shortened only by `Redactor.redact_and_cut`, which redacts the whole
  text first: a cut made before redaction leaves all but the tail of a secret on the cut,
  and the tail no longer matches.
- A reload that drops a secret does not forget it while a call that may still hold it runs:
  each call runs inside `Redactor.call()`, and a value dropped by `update` is redacted until
  every call that started before the drop has ended.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator

REPLACEMENT = "[REDACTED]"
#: Shorter values would redact ordinary words; no real key is this short.
MIN_SECRET_LENGTH = 6


class Redactor:
    """Replaces known secret values in text: the current ones, and the ones a reload dropped
    while a call that started before it may still hold them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self._current: frozenset[str] = frozenset()
        #: (calls started when these values were dropped, the values)
        self._retired: list[tuple[int, frozenset[str]]] = []
        self._started = 0
        self._running: set[int] = set()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Redact these values from now on; a value no longer among them stays redacted until
        every call already started has ended."""
        current = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        dropped = self._current - current
        if dropped and self._running:
            self._retired.append((self._started, dropped))
        self._current = current
        self._compile()

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """The span of one call: whatever secret it may take is redacted until it ends, even
        if a reload drops that secret meanwhile. Enter it before the call reads the
        configuration snapshot, and leave it once the call's answer is written."""
        self._started += 1
        number = self._started
        self._running.add(number)
        try:
            yield
        finally:
            self._running.discard(number)
            self._forget_retired()

    @property
    def retired_count(self) -> int:
        """Dropped values still redacted for calls in flight (for tests and `status`)."""
        return sum(len(values) for _, values in self._retired)

    def _forget_retired(self) -> None:
        if not self._retired:
            return
        oldest = min(self._running, default=None)
        kept = [(upto, v) for upto, v in self._retired if oldest is not None and oldest <= upto]
        if len(kept) != len(self._retired):
            self._retired = kept
            self._compile()

    def _compile(self) -> None:
        values = set(self._current).union(*(v for _, v in self._retired))
        ordered = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

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
