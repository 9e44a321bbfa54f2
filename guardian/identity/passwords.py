"""Password hashes: PBKDF2-SHA256 (libpass) at a cost from the environment.

Stored hashes with fewer rounds than the configured cost are rehashed at the next good sign-in
(`weaker`). Verifying never raises: a stored value that is not a PBKDF2 hash never matches.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping

from passlib.hash import pbkdf2_sha256

logger = logging.getLogger("sealgate.guardian.auth")

#: OWASP's figure for PBKDF2-HMAC-SHA256; `SEALGATE_PBKDF2_ROUNDS` lowers it for tests only.
DEFAULT_PBKDF2_ROUNDS = 600_000
MIN_PBKDF2_ROUNDS = 1000
ROUNDS_SETTING = "SEALGATE_PBKDF2_ROUNDS"


def pbkdf2_rounds(environ: Mapping[str, str]) -> int:
    """The PBKDF2 cost from the environment; anything unusable keeps the default."""
    raw = environ.get(ROUNDS_SETTING, "")
    if not raw:
        return DEFAULT_PBKDF2_ROUNDS
    try:
        rounds = int(raw)
    except ValueError:
        rounds = 0
    if rounds < MIN_PBKDF2_ROUNDS:
        logger.warning(
            "%s=%r is not a number of rounds >= %d; using %d",
            ROUNDS_SETTING,
            raw[:32],
            MIN_PBKDF2_ROUNDS,
            DEFAULT_PBKDF2_ROUNDS,
        )
        return DEFAULT_PBKDF2_ROUNDS
    return rounds


class Passwords:
    """Hashing and checking off the event loop (each costs tens of milliseconds)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.rounds = pbkdf2_rounds(environ)
        self._hasher = pbkdf2_sha256.using(rounds=self.rounds)
        #: Verified when there is no hash to check, so an unknown user costs the same work.
        self._dummy_hash = ""

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def dummy(self) -> str:
        """A hash of nothing anyone knows, at the configured cost."""
        if not self._dummy_hash:
            self._dummy_hash = await self.hash(secrets.token_hex(16))
        return self._dummy_hash

    async def verify(self, password: str, stored: str) -> bool:
        return await asyncio.to_thread(_verify, password, stored)

    def weaker(self, stored: str) -> bool:
        """Whether a stored hash has fewer rounds than the configured cost."""
        try:
            return bool(pbkdf2_sha256.from_string(stored).rounds < self.rounds)
        except (ValueError, TypeError):
            return False


def _verify(password: str, stored: str) -> bool:
    """A stored value that is not a PBKDF2 hash never matches (and never raises)."""
    try:
        return bool(pbkdf2_sha256.verify(password, stored))
    except (ValueError, TypeError):
        return False
