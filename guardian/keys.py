"""Several keys per provider: calls are spread over them, and a key the provider refuses
(401, 403, 429) is set aside for a while before the chain falls back to another provider."""

from __future__ import annotations

import time
from dataclasses import dataclass

from guardian.secrets import Secrets

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

    def order(self, secrets: Secrets) -> list[tuple[str, str]]:
        """(name, value) of present keys: healthy ones first, rotating, then failing ones."""
        present = [(name, value) for name in self.names if (value := secrets.get(name))]
        if not present:
            return []
        start = self._next % len(present)
        self._next += 1
        rotated = present[start:] + present[:start]
        now = time.monotonic()
        healthy = [kv for kv in rotated if self._health[kv[0]].failing_until <= now]
        failing = [kv for kv in rotated if self._health[kv[0]].failing_until > now]
        return healthy + failing

    def mark_failing(self, name: str, reason: str) -> None:
        self._health[name] = KeyHealth(time.monotonic() + FAILING_FOR_S, reason)

    def mark_ok(self, name: str) -> None:
        health = self._health[name]
        if health.failing_until:
            self._health[name] = KeyHealth()

    def status(self) -> dict[str, str]:
        now = time.monotonic()
        return {
            name: f"failing ({health.reason})" if health.failing_until > now else "ok"
            for name, health in self._health.items()
        }
