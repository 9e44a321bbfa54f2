"""Several keys per provider: calls are spread over them, and a key the provider refuses
(401, 403, 429) is set aside for a while before the chain falls back to another provider.

`KeyRing` is the pure bookkeeping of one provider's keys (tested in-process, with a clock
passed in); `KeyRotation` runs one provider call over them, and is the key layer of a running
call (`send`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from guardian import telemetry
from guardian.calls.job import Job
from guardian.calls.job import Send as Inner
from guardian.providers.types import ChatResult, ProviderFailure
from guardian.secrets import Secrets
from protocol.pyfun import ProviderConfig

logger = logging.getLogger("sealgate.guardian.router")

T = TypeVar("T")
#: One try with one key: `send(key, timeout_s)`.
Send = Callable[[str | None, float], Awaitable[T]]

FAILING_FOR_S = 60.0


@dataclass(slots=True)
class KeyHealth:
    failing_until: float = 0.0
    reason: str = ""


class KeyRing:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._next = 0
        self._health: dict[str, KeyHealth] = {name: KeyHealth() for name in names}

    def order(self, secrets: Secrets, now: float | None = None) -> list[tuple[str, str]]:
        """(name, value) of present keys: healthy ones first, rotating, then failing ones."""
        present = [(name, value) for name in self.names if (value := secrets.get(name))]
        if not present:
            return []
        start = self._next % len(present)
        self._next += 1
        rotated = present[start:] + present[:start]
        now = time.monotonic() if now is None else now
        healthy = [kv for kv in rotated if self._health[kv[0]].failing_until <= now]
        failing = [kv for kv in rotated if self._health[kv[0]].failing_until > now]
        return healthy + failing

    def mark_failing(self, name: str, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._health[name] = KeyHealth(now + FAILING_FOR_S, reason)

    def mark_ok(self, name: str) -> None:
        health = self._health[name]
        if health.failing_until:
            self._health[name] = KeyHealth()

    def status(self, now: float | None = None) -> dict[str, str]:
        now = time.monotonic() if now is None else now
        return {
            name: f"failing ({health.reason})" if health.failing_until > now else "ok"
            for name, health in self._health.items()
        }


class KeyRotation:
    """The key rings of every provider, and one provider call run over its keys."""

    def __init__(self, key_used: Callable[[str], None] = lambda name: None) -> None:
        self._rings: dict[str, KeyRing] = {}
        #: Told each key that worked (the secret store keeps a last-used date).
        self._key_used = key_used

    def ring(self, provider: ProviderConfig) -> KeyRing:
        ring = self._rings.get(provider.name)
        if ring is None or ring.names != provider.env_keys:
            ring = self._rings[provider.name] = KeyRing(provider.env_keys)
        return ring

    def status(self) -> dict[str, dict[str, str]]:
        return {name: ring.status() for name, ring in self._rings.items()}

    async def send(self, job: Job, inner: Inner) -> ChatResult:
        """The layer: the job with each of its provider's keys in turn (`call`). Once text
        has reached the caller, another key would repeat it: no other key then."""
        return await self.call(
            job.secrets,
            job.provider,
            job.deadline,
            lambda key, timeout: inner(replace(job, key=key, timeout=timeout)),
            may_retry=lambda: not job.streamed,
        )

    async def call(
        self,
        secrets: Secrets,
        provider: ProviderConfig,
        deadline: float,
        send: Send[T],
        may_retry: Callable[[], bool] = lambda: True,
    ) -> T:
        """Call `send(key, timeout)` with the provider's keys in rotation. A key the provider
        refuses (401, 403, 429) is set aside for a while and the next key is tried before
        the chain falls back; any other failure goes straight to the caller."""
        keys: list[tuple[str | None, str | None]] = [(None, None)]
        if provider.requires_key:
            keys = list(self.ring(provider).order(secrets))
            if not keys:
                raise ProviderFailure("config", "no key is configured")
        failure: ProviderFailure | None = None
        for name, key in keys:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderFailure("timeout", "the call's time budget ran out")
            if name is not None:
                # the key's slot number (its place in the provider's keys), never the key
                telemetry.current().add_event(
                    "sealgate.key", {"sealgate.key.slot": provider.env_keys.index(name)}
                )
            try:
                result = await send(key, min(provider.timeout_sec, remaining))
            except ProviderFailure as exc:
                if name is None or not exc.blames_key or not may_retry():
                    raise
                telemetry.current().add_event(
                    "sealgate.key.refused",
                    {
                        "sealgate.key.slot": provider.env_keys.index(name),
                        "error.type": telemetry.error_type_of(exc),
                    },
                )
                self.ring(provider).mark_failing(name, f"HTTP {exc.status}")
                logger.warning(
                    "%s: key %s refused (HTTP %s); trying the next key",
                    provider.name,
                    name,
                    exc.status,
                )
                failure = exc
                continue
            if name is not None:
                self.ring(provider).mark_ok(name)
                self._key_used(name)
            return result
        raise failure or ProviderFailure("config", "no key is configured")
