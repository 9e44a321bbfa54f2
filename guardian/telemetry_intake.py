"""The `trace.spans` notification: the sandbox's finished spans, checked and rate-bounded
before they join the guardian's export.

The params are decoded into their Struct (`protocol.contract.TraceSpansParams`: at most
`MAX_SPANS_PER_NOTIFICATION` spans, each with bounded ids, names and attributes); a malformed
notification is a protocol violation like any other. Beyond `SPANS_PER_S` (with a burst of
`SPAN_BURST`) spans are dropped, counted and logged at most once a minute, so a flooding
sandbox costs the guardian a decode per notification and nothing more.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from guardian import telemetry
from protocol.contract import TraceSpansParams, decode_params

logger = logging.getLogger("sealgate.guardian.telemetry")

SPANS_PER_S = 200.0
SPAN_BURST = 400.0
DROP_LOG_EVERY_S = 60.0


class SpanIntake:
    """A token bucket over every sandbox connection's spans."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tokens = SPAN_BURST
        self._at = clock()
        self.dropped = 0
        self._logged_at = -DROP_LOG_EVERY_S

    def take(self, params: dict[str, Any]) -> None:
        """Decode and pass on the spans the rate allows; raises `InvalidParams` when the
        notification is malformed (the server closes the connection)."""
        spans = decode_params(TraceSpansParams, params).spans
        if not telemetry.enabled():
            return
        now = self._clock()
        self._tokens = min(SPAN_BURST, self._tokens + (now - self._at) * SPANS_PER_S)
        self._at = now
        allowed = min(len(spans), int(self._tokens))
        self._tokens -= allowed
        if allowed < len(spans):
            self.dropped += len(spans) - allowed
            if now - self._logged_at >= DROP_LOG_EVERY_S:
                logger.warning(
                    "dropped %d sandbox span(s) over %d a second", self.dropped, int(SPANS_PER_S)
                )
                self._logged_at = now
        telemetry.sandbox_spans(spans[:allowed])
