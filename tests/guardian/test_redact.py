from __future__ import annotations

import io
import logging

from guardian.redact import RedactionFilter, Redactor

SECRET = "sk-live-0123456789abcdef"


def test_redactor_replaces_every_occurrence_longest_first() -> None:
    redactor = Redactor([SECRET, SECRET[:10]])
    assert redactor.redact(f"key={SECRET}; again {SECRET}") == "key=[REDACTED]; again [REDACTED]"
    assert "[REDACTED]" in repr(Redactor([SECRET])) or "hidden" in repr(Redactor([SECRET]))


def test_filter_covers_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter(Redactor([SECRET])))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("provider said %s", f"invalid key {SECRET}")
        try:
            raise ValueError(f"boom {SECRET}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count("[REDACTED]") == 2
