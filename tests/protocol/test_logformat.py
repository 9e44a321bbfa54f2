"""`HUB_LOG_FORMAT=json` (`protocol.logformat`): one JSON object per record, with the span's
ids inside one, and the sandbox receives the setting by name."""

from __future__ import annotations

import json
import logging
import sys

from protocol.environment import SANDBOX_ENV_ALLOWLIST
from protocol.logformat import JsonLines, log_format


def record(message: str = "hello %s", args: tuple[object, ...] = ("world",)) -> logging.LogRecord:
    return logging.LogRecord("sealgate.test", logging.WARNING, __file__, 1, message, args, None)


def test_a_record_is_one_json_line_with_the_span_ids() -> None:
    line = JsonLines("guardian", lambda: ("a" * 32, "b" * 16)).format(record())
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "hello world" and data["level"] == "WARNING"
    assert data["process"] == "guardian" and data["logger"] == "sealgate.test"
    assert data["trace_id"] == "a" * 32 and data["span_id"] == "b" * 16
    assert data["time"].endswith("+00:00")


def test_outside_a_span_no_ids_and_exceptions_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record("failed", ())
        failed.exc_info = sys.exc_info()
    data = json.loads(JsonLines("sandbox").format(failed))
    assert "trace_id" not in data and "ValueError: boom" in data["exception"]
    multiline = json.loads(JsonLines("sandbox").format(record("a\nb", ())))
    assert multiline["message"] == "a\nb"


def test_the_setting() -> None:
    assert log_format({}) == "text"
    assert log_format({"HUB_LOG_FORMAT": " JSON "}) == "json"
    assert log_format({"HUB_LOG_FORMAT": "xml"}) == "text"
    assert "HUB_LOG_FORMAT" in SANDBOX_ENV_ALLOWLIST
    assert not [name for name in SANDBOX_ENV_ALLOWLIST if name.startswith("OTEL_")]
