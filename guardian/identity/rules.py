"""Sign-in rules from `[HUB_LIMITS]`, and what a user name and a password must be."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import InvalidParams
from protocol.pyfun import HubLimitsConfig

MIN_PASSWORD = 8
#: One answer for an unknown user, a wrong password and a locked account, so a login never
#: tells which user names exist.
LOGIN_REFUSED = (
    "invalid user name or password, or the account is locked; try again later or ask an operator"
)


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """From `[HUB_LIMITS]`."""

    max_failed_logins: int = 5
    login_attempts_per_min: int = 20  # per client IP, whatever the user name
    lockout_s: float = 15 * 60
    session_idle_s: float = 12 * 3600
    session_max_s: float = 7 * 24 * 3600

    @classmethod
    def from_config(cls, limits: HubLimitsConfig) -> AuthLimits:
        """Typed and checked when the configuration loaded; only units change here."""
        return cls(
            max_failed_logins=limits.max_failed_logins,
            login_attempts_per_min=limits.login_attempts_per_min,
            lockout_s=limits.lockout_minutes * 60,
            session_idle_s=limits.session_idle_minutes * 60,
            session_max_s=limits.session_max_hours * 3600,
        )


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise InvalidParams("a user name is 1-64 letters, digits and . _ - @")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidParams(f"a password needs at least {MIN_PASSWORD} characters")
    return password
