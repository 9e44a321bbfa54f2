"""One attempt on its way down the layers of a running call, and what a layer is.

A layer has one method, `send(job, inner)`: it may ask `inner` (the rest of the stack) once,
several times (a retry, another key), or not at all, and may pass on a changed copy of the
job (the key chosen, the time left). The stack is declared in `guardian.calls.run`, like
httpx's transports or Starlette's middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from guardian.calls.record import Observed
from guardian.calls.streaming import Emitter
from guardian.providers.adapters import LLMAdapter
from guardian.providers.types import ChatResult, HttpCall, ProviderFailure
from guardian.secrets import Secrets
from protocol.pyfun import HubLimitsConfig, ProviderConfig


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt at one provider: its request built and its body encoded once; `key` and
    `timeout` are filled in by the layers on the way down."""

    provider: ProviderConfig
    adapter: LLMAdapter
    call: HttpCall  # without a key; its body already encoded
    deadline: float  # time.monotonic() by which the whole call ends
    secrets: Secrets
    limits: HubLimitsConfig
    observed: Observed
    emitter: Emitter | None
    is_last: bool
    describe: Callable[[ProviderFailure], str]  # a failure, redacted whole, then cut
    key: str | None = None
    timeout: float = 0.0

    @property
    def streamed(self) -> bool:
        """Whether a chunk reached the caller: then nothing may be asked again."""
        return self.emitter is not None and self.emitter.sent > 0


Send = Callable[[Job], Awaitable[ChatResult]]


class Layer(Protocol):
    async def send(self, job: Job, inner: Send) -> ChatResult: ...
