"""Users, sessions and API tokens, and who a credential belongs to.

The sandbox passes every credential exactly as it received it (a bearer token or a session
id) with the client's IP and User-Agent; only this module decides whose it is. Passwords are
PBKDF2-SHA256 (libpass) at `DEFAULT_PBKDF2_ROUNDS`, rehashed at the next good login when a
stored hash has fewer rounds; tokens and session ids have 256 bits of entropy and are stored only
as SHA-256 hashes. Positive resolutions are cached for `CACHE_S` seconds by a hash of the
credential, so a revocation takes effect within that time (at once for operator changes,
which clear the cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from passlib.hash import pbkdf2_sha256

from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.storage import Storage
from protocol.errors import InvalidParams, NotFound, Unauthenticated
from protocol.pyfun import HubLimitsConfig, RoleConfig, is_loopback_host, with_env_overrides

logger = logging.getLogger("sealgate.guardian.auth")

CACHE_S = 5.0
TOKEN_PREFIX = "sg_"  # noqa: S105 - a prefix, not a secret
BOOTSTRAP_TOKEN_ID = "bootstrap"  # noqa: S105 - an id, not a secret
MIN_PASSWORD = 8
#: Built-in roles, used unless `.pyfun` defines a role of the same name.
BUILTIN_ROLES: Mapping[str, RoleConfig] = {
    "admin": RoleConfig(name="admin"),
    "user": RoleConfig(name="user"),
}
#: OWASP's figure for PBKDF2-HMAC-SHA256; `SEALGATE_PBKDF2_ROUNDS` lowers it for tests only.
DEFAULT_PBKDF2_ROUNDS = 600_000
MIN_PBKDF2_ROUNDS = 1000
ROUNDS_SETTING = "SEALGATE_PBKDF2_ROUNDS"
#: One answer for an unknown user, a wrong password and a locked account, so a login never
#: tells which user names exist.
LOGIN_REFUSED = (
    "invalid user name or password, or the account is locked; try again later or ask an operator"
)


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


def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: RoleConfig
    kind: str  # "user", "anonymous" (open mode) or "operator" (admin socket)
    #: An OAuth access token's scopes (the role is narrowed to them); None for other
    #: credentials, which carry the whole role.
    scopes: tuple[str, ...] | None = None
    #: The user's stable id ('' for the operator and open mode): what tokens, sessions,
    #: grants, limits and budgets are keyed by, so a new user of an old name inherits nothing.
    user_id: str = ""
    #: What the credential itself is (an API token's id, a session, an OAuth family), so
    #: answers cached for one credential are not served to another of the same user.
    credential: str = ""

    @property
    def key(self) -> str:
        """What counters and budgets are kept under."""
        return self.user_id or self.name

    def grant(self) -> str:
        """An opaque digest of everything that decides what this credential may do: the
        user's id, the credential, the role as configured now (narrowed to the scopes).
        The sandbox keys its cached tool answers by it, so a change to any of them (a new
        user of the name, a narrower token, a role edited) never gets another's answer."""
        raw = repr((self.user_id, self.name, self.kind, self.credential, self.role, self.scopes))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @property
    def is_admin(self) -> bool:
        if self.kind in ("anonymous", "operator"):
            return True
        return self.role.name == "admin" and (self.scopes is None or "admin" in self.scopes)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "principal": self.name,
            "role": self.role.name,
            "kind": self.kind,
            "admin": self.is_admin,
            "user_id": self.user_id,
            "grant": self.grant(),
            "tools": list(self.role.tools),
        }
        if self.scopes is not None:
            wire["scopes"] = list(self.scopes)
        return wire


OPERATOR = Principal("operator", BUILTIN_ROLES["admin"], "operator")
ANONYMOUS = Principal("anonymous", BUILTIN_ROLES["admin"], "anonymous")
#: Open mode never covers db_query (a database, not a model) nor the operator's views.
OPEN_MODE_DB_QUERY = (
    "db_query needs a signed-in user, even in open mode: add one with"
    " `sealgate-ctl users add NAME` and send its token"
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


class Auth:
    def __init__(
        self,
        live: LiveConfig,
        storage: Storage,
        environ: Mapping[str, str],
        limits: Limits,
    ) -> None:
        self.live = live
        self.storage = storage
        self.environ = environ
        self.counters = limits
        self._users = 0
        self._counted_at = 0.0
        self._bind_for: object = None
        self._bind = ""
        self._cache: dict[str, tuple[float, Principal]] = {}
        self.rounds = pbkdf2_rounds(environ)
        self._hasher = pbkdf2_sha256.using(rounds=self.rounds)
        #: Verified when there is no hash to check, so an unknown user costs the same work.
        self._dummy_hash = ""
        # Imported here: the OAuth service builds principals with this module's classes.
        from guardian.oauth.service import OAuthService

        #: SealGate's own authorization server; its access tokens resolve in `resolve`.
        self.oauth = OAuthService(self, storage, environ)

    # configuration -------------------------------------------------------------------------
    @property
    def limits(self) -> AuthLimits:
        return AuthLimits.from_config(self.live.snapshot.config.hub_limits)

    def role(self, name: str) -> RoleConfig:
        roles = self.live.snapshot.config.roles
        return (
            roles.get(name)
            or BUILTIN_ROLES.get(name)
            or RoleConfig(name=name, tools=(), providers=(), models=())
        )

    def role_names(self) -> set[str]:
        return set(BUILTIN_ROLES) | set(self.live.snapshot.config.roles)

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

    def _bind_host(self) -> str:
        """Where the sandbox listens (HUB_HOST wins over [HUB]); computed once per config."""
        config = self.live.snapshot.config
        if self._bind_for is not config:
            self._bind_for = config
            self._bind = with_env_overrides(config, self.environ).hub.host
        return self._bind

    async def start(self) -> None:
        await self._dummy()
        self._users = await self.storage.count_users()
        token = self.live.snapshot.secrets.get("SEALGATE_BOOTSTRAP_TOKEN") or ""
        if token and self._users == 0:
            await self.bootstrap(token)
        if not self.enabled and not is_loopback_host(self._bind_host()):
            logger.warning(
                "no user exists and the gateway is configured for %s: protected routes"
                " answer 401 until an operator adds a user",
                self._bind_host(),
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

    def open_possible(self) -> bool:
        """Open mode needs the configured host to be loopback too (the stricter wins)."""
        return is_loopback_host(self._bind_host())

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

    def forget(self) -> None:
        """Drop cached resolutions (after any change an operator makes)."""
        self._cache.clear()

    # resolution ----------------------------------------------------------------------------
    async def resolve(self, caller: Mapping[str, Any], listens_on_loopback: bool) -> Principal:
        """The principal behind a sealed call's caller; raises `Unauthenticated`.

        `listens_on_loopback`: the calling sandbox stated in `hello` that every address it
        listens on is loopback. Open mode needs that and a loopback configured host.
        """
        credential = caller.get("credential")
        enabled = await self.refresh()
        if not enabled:
            # Open mode: nobody to resolve a credential to. SDKs always send some key, so
            # one is ignored rather than refused.
            if not (listens_on_loopback and self.open_possible()):
                raise Unauthenticated(
                    "no user exists and this gateway is reachable beyond loopback: create one"
                    " with `sealgate-ctl users add NAME`, or set SEALGATE_BOOTSTRAP_TOKEN"
                )
            return ANONYMOUS
        if not credential:
            raise Unauthenticated(
                "a credential is required: send Authorization: Bearer <token>, or log in at"
                " /auth/login"
            )
        key = credential_hash(credential)
        cache_key = f"{key}|{caller.get('ip', '')}|{caller.get('user_agent', '')}"
        cached = self._cache.get(cache_key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if self.oauth.handles(credential):
            principal = await self.oauth.resolve(credential)
        else:
            principal = await self._resolve_token(key) or await self._resolve_session(key, caller)
        if principal is None:
            raise Unauthenticated("invalid, expired or revoked credential")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (now + CACHE_S, principal)
        return principal

    async def _resolve_token(self, key: str) -> Principal | None:
        token = await self.storage.find_token(key)
        if token is None or token["revoked_at"] is not None:
            return None
        if token["expires_at"] is not None and token["expires_at"] <= time.time():
            return None
        user = await self.storage.get_user_by_id(token["user_id"])
        if user is None or self.locked(user):
            return None
        await self.storage.touch_token(token["id"])
        return self.principal_of(user, credential=f"token:{token['id']}")

    async def _resolve_session(self, key: str, caller: Mapping[str, Any]) -> Principal | None:
        session = await self.storage.get_session(key)
        if session is None:
            return None
        now = time.time()
        if session["ip"] != caller.get("ip") or session["user_agent"] != caller.get("user_agent"):
            await self.storage.add_audit(
                session["user_name"],
                "session",
                "refused",
                str(caller.get("ip", "")),
                "IP or User-Agent changed",
            )
            return None
        if (
            session["expires_at"] <= now
            or session["last_seen_at"] + self.limits.session_idle_s <= now
        ):
            await self.storage.delete_session(key)
            return None
        user = await self.storage.get_user_by_id(session["user_id"])
        if user is None or self.locked(user):
            return None
        if now - session["last_seen_at"] > 60:
            await self.storage.touch_session(key)
        return self.principal_of(user, credential=f"session:{key[:16]}")

    def principal_of(
        self,
        user: Mapping[str, Any],
        *,
        credential: str,
        role: RoleConfig | None = None,
        scopes: tuple[str, ...] | None = None,
    ) -> Principal:
        """A signed-in user's principal, keyed by their id."""
        return Principal(
            user["name"],
            role or self.role(user["role"]),
            "user",
            scopes=scopes,
            user_id=str(user["id"] or ""),
            credential=credential,
        )

    @staticmethod
    def locked(user: Mapping[str, Any]) -> bool:
        until = user["locked_until"]
        return until is not None and until > time.time()

    # login and logout ----------------------------------------------------------------------
    async def _dummy(self) -> str:
        if not self._dummy_hash:
            self._dummy_hash = await asyncio.to_thread(self._hasher.hash, secrets.token_hex(16))
        return self._dummy_hash

    async def login(self, username: str, password: str, ip: str, user_agent: str) -> dict[str, Any]:
        """A new session for a good user name and password (see `authenticate`)."""
        user = await self.authenticate(username, password, ip)
        session = secrets.token_urlsafe(32)
        expires = time.time() + self.limits.session_max_s
        await self.storage.create_session(
            credential_hash(session), username, ip, user_agent, expires, user["id"]
        )
        await self.storage.add_audit(username, "login", "ok", ip, user_id=user["id"])
        return {"session": session, "principal": username, "expires_at": expires}

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
        stored = user["password_hash"] if known and user else await self._dummy()
        ok = await asyncio.to_thread(self._verify, password, stored)
        if user is None or not known:
            await self.storage.add_audit(username[:64], "login", "refused", ip, "unknown user")
            raise Unauthenticated(LOGIN_REFUSED)
        if attempt is None or self.locked(user) or attempt > self.limits.max_failed_logins:
            if attempt is not None and not self.locked(user):
                await self.storage.set_lock(username, time.time() + self.limits.lockout_s, False)
                self.forget()
            await self.storage.add_audit(username, "login", "refused", ip, "account locked")
            raise Unauthenticated(LOGIN_REFUSED)
        if not ok:
            failures = attempt
            detail = f"bad password ({failures} in a row)"
            if failures >= self.limits.max_failed_logins:
                await self.storage.set_lock(username, time.time() + self.limits.lockout_s, False)
                detail += "; account locked"
                self.forget()
            await self.storage.add_audit(username, "login", "refused", ip, detail)
            raise Unauthenticated(LOGIN_REFUSED)
        await self.storage.reset_failed_logins(username)
        if self._weaker(stored):
            await self.storage.set_password(
                username, await asyncio.to_thread(self._hasher.hash, password)
            )
            await self.storage.add_audit(username, "login", "rehashed", ip, f"{self.rounds} rounds")
        return dict(user)

    @staticmethod
    def _verify(password: str, stored: str) -> bool:
        """A stored value that is not a PBKDF2 hash never matches (and never raises)."""
        try:
            return bool(pbkdf2_sha256.verify(password, stored))
        except (ValueError, TypeError):
            return False

    def _weaker(self, stored: str) -> bool:
        try:
            return bool(pbkdf2_sha256.from_string(stored).rounds < self.rounds)
        except (ValueError, TypeError):
            return False

    async def logout(self, credential: str, ip: str) -> bool:
        key = credential_hash(credential)
        session = await self.storage.get_session(key)
        removed = await self.storage.delete_session(key)
        if removed and session is not None:
            await self.storage.add_audit(session["user_name"], "logout", "ok", ip)
        self.forget()
        return removed

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
        self.forget()
        return revoked

    async def lock(self, name: str, locked: bool) -> None:
        until = time.time() + 100 * 365 * 86400 if locked else None
        if not await self.storage.set_lock(name, until, by_operator=locked):
            raise NotFound(f"no user {name!r}")
        self.forget()
        action = "users.lock" if locked else "users.unlock"
        await self.storage.add_audit("operator", action, "ok", "", name)

    async def delete_user(self, name: str) -> None:
        if not await self.storage.delete_user(name):
            raise NotFound(f"no user {name!r}")
        await self._recount()
        self.forget()
        await self.storage.add_audit("operator", "users.delete", "ok", "", name)

    async def issue_token(self, user: str, expires_s: float | None, label: str) -> dict[str, Any]:
        row = await self.storage.get_user(user)
        if row is None:
            raise NotFound(f"no user {user!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        expires_at = time.time() + expires_s if expires_s else None
        await self.storage.create_token(
            token_id, user, credential_hash(token), label, expires_at, row["id"]
        )
        await self.storage.add_audit("operator", "tokens.issue", "ok", "", f"{token_id} for {user}")
        return {"token": token, "id": token_id, "user": user, "expires_at": expires_at}

    async def revoke_token(self, token_or_id: str) -> None:
        by_hash = credential_hash(token_or_id)
        if not await self.storage.revoke_token(token_or_id, by_hash):
            raise NotFound("no active token with that id or value")
        self.forget()
        shown = token_or_id if token_or_id.startswith("tok_") else "(by value)"
        await self.storage.add_audit("operator", "tokens.revoke", "ok", "", shown)

    def _check_role(self, role: str) -> None:
        if role not in self.role_names():
            raise InvalidParams(
                f"unknown role {role!r}; roles: {', '.join(sorted(self.role_names()))}"
            )

    async def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise InvalidParams(f"a password needs at least {MIN_PASSWORD} characters")
        return await asyncio.to_thread(self._hasher.hash, password)
