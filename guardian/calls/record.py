"""What the layers of a running call observe, kept as plain facts for metering to read.

The run stage writes these fields as it goes (no method of metering is called while a call
runs); `guardian.calls.metering` turns them into the one ledger row when the call ends,
however it ends. Nothing here computes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guardian.storage.base import Reservation, UsageRow
from protocol.pyfun import ModelConfig

#: An attempt's phase: not at the provider, at it with no answer yet, or mid-stream.
IDLE = "idle"
SENT = "sent"
ANSWERING = "answering"


@dataclass(slots=True)
class Observed:
    """One attempt (one provider of the chain; its retries and keys share it)."""

    provider: str
    model: str
    model_config: ModelConfig | None
    input_bound: int
    max_tokens: int
    phase: str = IDLE
    #: as the provider reported them so far (None: not reported)
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: UTF-8 bytes of the text and tool calls that came back
    text_bytes: int = 0


@dataclass(slots=True)
class CallRecord:
    """One call: who made it, what it holds, and its attempts in order."""

    principal: str
    tool: str
    action: str
    ip: str = ""
    user_id: str = ""
    started: float = 0.0
    reservation: Reservation | None = None
    attempts: list[Observed] = field(default_factory=list)
    #: the ledger row's key, known from the start: the caller's receipt id ('' for a new one)
    key: str = ""
    #: SHA-256 of the sealed request (guardian.tlog.receipts.request_digest)
    request_digest: str = ""
    #: the one ledger row, once the call has ended
    row: UsageRow | None = None
