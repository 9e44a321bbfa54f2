"""The principal, roles and credential hashing: what every part of the guardian may import.

A leaf: it imports no other guardian module, so identity's services, the call path and the
handlers all build on it without a circle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.pyfun import PyfunConfig, RoleConfig

#: Built-in roles, used unless `.pyfun` defines a role of the same name.
BUILTIN_ROLES: Mapping[str, RoleConfig] = {
    "admin": RoleConfig(name="admin"),
    "user": RoleConfig(name="user"),
}


def credential_hash(credential: str) -> str:
    """What a token, session id or OAuth value is stored and cached under (never itself)."""
    return hashlib.sha256(credential.encode()).hexdigest()


def role_of(config: PyfunConfig, name: str) -> RoleConfig:
    """A role by name: `.pyfun`'s, else a built-in one, else a role that opens nothing."""
    return (
        config.roles.get(name)
        or BUILTIN_ROLES.get(name)
        or RoleConfig(name=name, tools=(), providers=(), models=())
    )


def role_names(config: PyfunConfig) -> set[str]:
    return set(BUILTIN_ROLES) | set(config.roles)


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


def user_principal(
    user: Mapping[str, Any],
    role: RoleConfig,
    *,
    credential: str,
    scopes: tuple[str, ...] | None = None,
) -> Principal:
    """A signed-in user's principal, keyed by their id."""
    return Principal(
        user["name"],
        role,
        "user",
        scopes=scopes,
        user_id=str(user["id"] or ""),
        credential=credential,
    )


OPERATOR = Principal("operator", BUILTIN_ROLES["admin"], "operator")
ANONYMOUS = Principal("anonymous", BUILTIN_ROLES["admin"], "anonymous")
#: Open mode never covers db_query (a database, not a model) nor the operator's views.
OPEN_MODE_DB_QUERY = (
    "db_query needs a signed-in user, even in open mode: add one with"
    " `sealgate-ctl users add NAME` and send its token"
)
