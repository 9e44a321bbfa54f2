"""Users: whether auth is on (open mode), checking a user name and password, and the
operator's changes to users.

Open mode: with no user at all, and a loopback gateway, every caller is `ANONYMOUS`; the
first user switches auth on. Users are re-counted at most every `CACHE_S` seconds, since
another replica sharing the database may add the first one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from guardian.identity.cache import CACHE_S, PrincipalCache
from guardian.identity.passwords import Passwords
from guardian.identity.principal import (
    Principal,
    credential_hash,
    role_names,
    role_of,
    user_principal,
)
from guardian.identity.rules import LOGIN_REFUSED, AuthLimits, check_name, check_password
from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.storage import Storage
from protocol.errors import InvalidParams, NotFound, Unauthenticated
from protocol.pyfun import RoleConfig, is_loopback_host, with_env_overrides

logger = logging.getLogger("sealgate.guardian.auth")

BOOTSTRAP_TOKEN_ID = "bootstrap"  # noqa: S105 - an id, not a secret


def locked(user: Mapping[str, Any]) -> bool:
    until = user["locked_until"]
    return until is not None and until > time.time()


class Accounts:
    def __init__(
        self,
        live: LiveConfig,
        storage: Storage,
        environ: Mapping[str, str],
        limits: Limits,
        cache: PrincipalCache,
        passwords: Passwords,
    ) -> None:
        self.live = live
        self.storage = storage
        self.environ = environ
        self.counters = limits
        self.cache = cache
        self.passwords = passwords
        self._users = 0
        self._counted_at = 0.0
        self._bind_for: object = None
        self._bind: tuple[str, bool] = ("", False)  # the host, and whether it is loopback

    # configuration -------------------------------------------------------------------------
    @property
    def limits(self) -> AuthLimits:
        return AuthLimits.from_config(self.live.snapshot.config.hub_limits)

    def role(self, name: str) -> RoleConfig:
        return role_of(self.live.snapshot.config, name)

    def principal_of(
        self,
        user: Mapping[str, Any],
        *,
        credential: str,
        role: RoleConfig | None = None,
        scopes: tuple[str, ...] | None = None,
    ) -> Principal:
        """A signed-in user's principal, with the role configured now."""
        return user_principal(
            user, role or self.role(user["role"]), credential=credential, scopes=scopes
        )

    # open mode -----------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._users > 0 or self.live.snapshot.config.hub.auth == "required"

    async def refresh(self) -> bool:
        """Whether auth is on, re-counting users at most every `CACHE_S` seconds: another
        replica sharing the database may have added the first user."""
        now = time.monotonic()
        if now >= self._counted_at + CACHE_S:
            await self._recount()
            self._counted_at = now
        return self.enabled

    async def _recount(self) -> bool:
        """Re-count users; say so at warning level when open mode ends or begins, since it
        changes what every client must send. Returns whether auth was just switched on."""
        before = self.enabled
        self._users = await self.storage.count_users()
        if before == self.enabled:
            return False
        if self.enabled:
            logger.warning(
                "open mode is over: a user exists, so auth is on; every client (MCP, OpenAI"
                " SDKs, /api) must now send a token (sealgate-ctl tokens issue --user NAME)"
            )
            return True
        logger.warning(
            "no user remains: auth is off%s",
            "; the gateway is open again on loopback (anyone on this machine may use it)"
            if self.open_possible()
            else " and protected routes answer 401 until a user exists",
        )
        return False

    def _bind_host(self) -> tuple[str, bool]:
        """Where the sandbox listens (HUB_HOST wins over [HUB]) and whether that is
        loopback: worked out once per configuration (open mode asks on every call)."""
        config = self.live.snapshot.config
        if self._bind_for is not config:
            host = with_env_overrides(config, self.environ).hub.host
            self._bind_for, self._bind = config, (host, is_loopback_host(host))
        return self._bind

    def open_possible(self) -> bool:
        """Open mode needs the configured host to be loopback too (the stricter wins)."""
        return self._bind_host()[1]

    async def start(self) -> None:
        await self.passwords.dummy()
        self._users = await self.storage.count_users()
        token = self.live.snapshot.secrets.get("SEALGATE_BOOTSTRAP_TOKEN") or ""
        if token and self._users == 0:
            await self.bootstrap(token)
        if not self.enabled and not self.open_possible():
            logger.warning(
                "no user exists and the gateway is configured for %s: protected routes"
                " answer 401 until an operator adds a user",
                self._bind_host()[0],
            )

    def sandbox_listens_on(self, hosts: Sequence[str]) -> None:
        """A sandbox said where it really listens (`hello`); say what that means."""
        if self.enabled:
            return
        if hosts and all(is_loopback_host(h) for h in hosts) and self.open_possible():
            logger.warning(
                "no user exists: the gateway is open on loopback (%s). Anyone on this machine"
                " may use its tools and keys; /metrics and db_query still need a user",
                ", ".join(hosts),
            )
        else:
            logger.warning(
                "no user exists and the sandbox listens on %s: protected routes answer 401"
                " until an operator adds a user (sealgate-ctl users add NAME)",
                ", ".join(hosts) or "an address it did not state",
            )

    async def bootstrap(self, token: str) -> None:
        if len(token) < 16:
            logger.error("SEALGATE_BOOTSTRAP_TOKEN is shorter than 16 characters; ignored")
            return
        user_id = await self.storage.create_user("admin", None, "admin")
        if user_id is not None:
            await self.storage.create_token(
                BOOTSTRAP_TOKEN_ID, "admin", credential_hash(token), "bootstrap", None, user_id
            )
            await self.storage.add_audit("system", "bootstrap", "ok", "", "user admin created")
            logger.info("bootstrap: created user admin with SEALGATE_BOOTSTRAP_TOKEN")
        self._users = await self.storage.count_users()

    # signing in ----------------------------------------------------------------------------
    async def authenticate(self, username: str, password: str, ip: str) -> dict[str, Any]:
        """The user's row for a good user name and password; raises `Unauthenticated`. Every
        refusal gives the same answer after the same work (one verification at the
        configured cost), whether the user is unknown, locked, or the password wrong. The
        OAuth sign-in page uses this too, so it shares the lockout and the rate limit."""
        # guessing across many user names, from one address
        await self.counters.hit(
            f"login:{ip}", self.limits.login_attempts_per_min, f"login attempts from {ip}"
        )
        user = await self.storage.get_user(username)
        known = user is not None and bool(user["password_hash"])
        # The attempt is counted before the password is checked, atomically: parallel
        # guesses each get their own number, and any past the limit are refused.
        attempt = await self.storage.count_login_attempt(username, time.time()) if known else None
        stored = user["password_hash"] if known and user else await self.passwords.dummy()
        ok = await self.passwords.verify(password, stored)
        if user is None or not known:
            await self.storage.add_audit(username[:64], "login", "refused", ip, "unknown user")
            raise Unauthenticated(LOGIN_REFUSED)
        if attempt is None or locked(user) or attempt > self.limits.max_failed_logins:
            if attempt is not None and not locked(user):
                await self.storage.set_lock(username, time.time() + self.limits.lockout_s, False)
                self.cache.forget()
            await self.storage.add_audit(username, "login", "refused", ip, "account locked")
            raise Unauthenticated(LOGIN_REFUSED)
        if not ok:
            failures = attempt
            detail = f"bad password ({failures} in a row)"
            if failures >= self.limits.max_failed_logins:
                await self.storage.set_lock(username, time.time() + self.limits.lockout_s, False)
                detail += "; account locked"
                self.cache.forget()
            await self.storage.add_audit(username, "login", "refused", ip, detail)
            raise Unauthenticated(LOGIN_REFUSED)
        await self.storage.reset_failed_logins(username)
        if self.passwords.weaker(stored):
            await self.storage.set_password(username, await self.passwords.hash(password))
            rounds = self.passwords.rounds
            await self.storage.add_audit(username, "login", "rehashed", ip, f"{rounds} rounds")
        return dict(user)

    async def active_user(self, user_id: str) -> dict[str, Any] | None:
        """The user of a stored id, unless gone or locked (what every credential needs)."""
        user = await self.storage.get_user_by_id(user_id)
        if user is None or locked(user):
            return None
        return user

    # operator actions ----------------------------------------------------------------------
    async def add_user(self, name: str, password: str | None, role: str) -> bool:
        """Returns whether this user switched auth on (the end of open mode)."""
        check_name(name)
        self._check_role(role)
        password_hash = await self._hash(password) if password else None
        if await self.storage.create_user(name, password_hash, role) is None:
            raise InvalidParams(f"user {name!r} exists already")
        switched_on = await self._recount()
        await self.storage.add_audit("operator", "users.add", "ok", "", f"{name} ({role})")
        return switched_on

    async def set_password(self, name: str, password: str) -> None:
        """A new password ends the user's sessions and every OAuth consent and token: what
        was let in with the old password must sign in again."""
        if not await self.storage.set_password(name, await self._hash(password)):
            raise NotFound(f"no user {name!r}")
        await self.storage.revoke_sessions(name, None)
        revoked = await self._revoke_oauth(name)
        await self.storage.add_audit(
            "operator", "users.passwd", "ok", "", f"{name}; {revoked} OAuth token(s) revoked"
        )

    async def set_role(self, name: str, role: str) -> None:
        """A new role revokes the user's OAuth consents and tokens: a consent was given for
        what the old role allowed, so the client asks the person again."""
        self._check_role(role)
        if not await self.storage.set_role(name, role):
            raise NotFound(f"no user {name!r}")
        revoked = await self._revoke_oauth(name)
        await self.storage.add_audit(
            "operator",
            "users.role",
            "ok",
            "",
            f"{name} -> {role}; {revoked} OAuth token(s) revoked",
        )

    async def _revoke_oauth(self, name: str) -> int:
        user = await self.storage.get_user(name)
        revoked = await self.storage.revoke_oauth_of(user["id"]) if user and user["id"] else 0
        self.cache.forget()
        return revoked

    async def lock(self, name: str, locked: bool) -> None:
        until = time.time() + 100 * 365 * 86400 if locked else None
        if not await self.storage.set_lock(name, until, by_operator=locked):
            raise NotFound(f"no user {name!r}")
        self.cache.forget()
        action = "users.lock" if locked else "users.unlock"
        await self.storage.add_audit("operator", action, "ok", "", name)

    async def delete_user(self, name: str) -> None:
        if not await self.storage.delete_user(name):
            raise NotFound(f"no user {name!r}")
        await self._recount()
        self.cache.forget()
        await self.storage.add_audit("operator", "users.delete", "ok", "", name)

    def _check_role(self, role: str) -> None:
        names = role_names(self.live.snapshot.config)
        if role not in names:
            raise InvalidParams(f"unknown role {role!r}; roles: {', '.join(sorted(names))}")

    async def _hash(self, password: str) -> str:
        return await self.passwords.hash(check_password(password))
