"""PostgreSQL connection strings, made safe for hosted servers (Neon, Supabase, poolers).

- `statement_timeout` (and `options`) are removed: asyncpg would send them as startup
  parameters, which transaction poolers refuse. SealGate sets timeouts per transaction.
- libpq-only keys asyncpg does not know (`keepalives*`, `connect_timeout`, ...) are removed;
  SealGate turns TCP keepalives on itself.
- `sslmode` is raised to at least `require` for any host that is not loopback or a socket.
- A host no server can have (a space, a quote, ...) is refused here, naming the variable and
  the host, so the guardian stops at once (exit 78) instead of retrying a name that cannot
  resolve. Messages never hold the password.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

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
#: A DNS name (RFC 1123 letters, digits, hyphens; underscores, which container names use).
_HOST_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")


@dataclass(frozen=True, slots=True)
class CleanDSN:
    dsn: str
    host: str
    removed: tuple[str, ...]
    ssl_raised: bool

    def where(self) -> str:
        """Which server, for people: the host and port, never the user or the password."""
        parts = urlsplit(self.dsn)
        host = self.host or "the local socket"
        return f"host {host}" + (f" port {parts.port}" if parts.port else "")

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


def _bad_host(host: str) -> bool:
    """Whether no server can have this host: not a name, an address or a socket directory."""
    host = unquote(host)
    if not host or host.startswith("/"):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return not _HOST_NAME.match(host)
    return False


def _hosts(netloc: str) -> list[str]:
    """Every host of the URL's authority: libpq allows several, `h1:5432,h2:5433`."""
    hosts = netloc.rpartition("@")[2]
    names = []
    for one in hosts.split(","):
        if one.startswith("["):  # an IPv6 address, with or without a port
            names.append(one[1:].partition("]")[0])
        else:
            names.append(one.partition(":")[0])
    return names


def clean(dsn: str, name: str = "DATABASE_URL") -> CleanDSN:
    """Raises `ValueError` (naming the variable and the host, never a credential) for a URL
    that is not PostgreSQL's or that names a host no server can have."""
    try:
        parts = urlsplit(dsn.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{name} is not a valid URL (is the port a number?)") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"{name} must start with postgresql:// or postgres://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    for host_name in (*_hosts(parts.netloc), dict(query).get("host", "")):
        if _bad_host(host_name):
            raise ValueError(
                f"{name} names the host {unquote(host_name)!r}, which no server can have"
                " (a space or another character a host name cannot hold); correct the host"
                f" in {name}"
            )
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
