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


def test_redact_and_cut_never_leaves_part_of_a_secret_on_the_cut() -> None:
    redactor = Redactor([SECRET])
    for pad in range(180, 200):
        text = "x" * pad + SECRET + " and more"
        cut = redactor.redact_and_cut(text, 200)
        assert len(cut) <= 200
        assert not any(SECRET[i : i + 6] in cut for i in range(len(SECRET) - 5)), pad
    assert redactor.redact_and_cut("short", 200) == "short"
