"""PostgreSQL connection strings, made safe for hosted servers (Neon, Supabase, poolers).

- `statement_timeout` (and `options`) are removed: asyncpg would send them as startup
  parameters, which transaction poolers refuse. SealGate sets timeouts per transaction.
- libpq-only keys asyncpg does not know (`keepalives*`, `connect_timeout`, ...) are removed;
  SealGate turns TCP keepalives on itself.
- `sslmode` is raised to at least `require` for any host that is not loopback or a socket.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_DROP = {
    "statement_timeout",
    "options",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "connect_timeout",
    "application_name",
}
_WEAK_SSL = {"", "disable", "allow", "prefer"}


@dataclass(frozen=True, slots=True)
class CleanDSN:
    dsn: str
    host: str
    removed: tuple[str, ...]
    ssl_raised: bool

    def redacted(self) -> str:
        parts = urlsplit(self.dsn)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        if parts.username:
            netloc = f"{parts.username}:***@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _is_local(host: str) -> bool:
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def clean(dsn: str) -> CleanDSN:
    """Raises `ValueError` (naming no credential) for a URL that is not PostgreSQL's."""
    try:
        parts = urlsplit(dsn.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("DATABASE_URL is not a valid URL (is the port a number?)") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    host = parts.hostname or dict(query).get("host", "")
    removed = tuple(sorted({key for key, _ in query if key in _DROP}))
    kept = [(key, value) for key, value in query if key not in _DROP]
    sslmode = dict(kept).get("sslmode", "")
    raised = False
    if not _is_local(host) and sslmode in _WEAK_SSL:
        kept = [(k, v) for k, v in kept if k != "sslmode"] + [("sslmode", "require")]
        raised = True
    cleaned = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), ""))
    return CleanDSN(cleaned, host, removed, raised)
