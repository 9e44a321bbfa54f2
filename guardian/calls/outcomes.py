"""What a failed attempt means for the rest of the chain, and the one error a caller gets
when no attempt answered: pure rules the run stage applies (`guardian.calls.run`)."""

from __future__ import annotations

from typing import Any, Protocol

from guardian.providers.types import ProviderFailure
from protocol.errors import ProviderError, RPCError, Timeout, Unavailable
from protocol.pyfun import ProviderConfig

#: One step of a call's fallback path as callers see it: {"provider", "error"}.
Step = dict[str, str]


class Tried(Protocol):
    """An attempt that was made: the provider it went to."""

    @property
    def provider(self) -> ProviderConfig: ...


def may_move_on(failure: ProviderFailure, chunks_sent: int) -> bool:
    """After this failure, may the call try the next provider of its chain?"""
    return failure.falls_back and not chunks_sent


def final_error(
    path: list[Step],
    last: tuple[Tried, ProviderFailure] | None,
    chunks_sent: int,
    describe: str,
) -> RPCError:
    """The one error a caller gets when no attempt answered; `describe` is the last
    failure, already redacted."""
    tried = "; ".join(f"{step['provider']}: {step['error']}" for step in path)
    data: dict[str, Any] = {"fallback_path": path}
    if last is None:
        return Unavailable(f"no provider could be tried ({tried})", data)
    attempt, failure = last
    data["provider"] = attempt.provider.name
    data["status"] = failure.status
    if chunks_sent:
        return ProviderError(
            f"the stream from {attempt.provider.name} broke after {chunks_sent} chunks: {describe}",
            data,
        )
    if not failure.falls_back:
        return ProviderError(
            f"{attempt.provider.name} refused the request ({describe});"
            " not retried elsewhere, since the request itself was refused",
            data,
        )
    tried_failures = [step for step in path if not step["error"].startswith("skipped")]
    if tried_failures and all(step["error"].startswith("timed out") for step in tried_failures):
        return Timeout(f"every provider timed out ({tried})", data)
    return ProviderError(f"every provider failed ({tried})", data)
