"""Host, Origin and content-type rules for every route but `/healthz`.

A web page must not be able to drive the gateway, least of all an open one on loopback:
- DNS rebinding: a page on `attacker.example` that resolves to 127.0.0.1 sends
  `Host: attacker.example`. Bound to loopback, only loopback names are served (421 otherwise);
  bound elsewhere, any name unless `[HUB] allowed_hosts` narrows it.
- Cross-site requests: a browser always sends `Origin` on a cross-origin POST. A present Origin
  must be the gateway's own (the Host the request names, http or https) or listed in
  `allowed_origins` / `cors_origins`; anything else (including `null`) gets 403.
- On a Hugging Face Space (`SPACE_HOST` set) the Space's own name is a served Host and
  `https://$SPACE_HOST` an allowed Origin without further configuration.
- "Simple" cross-site POSTs (`text/plain`, forms, an untyped Blob) need no CORS preflight, so
  every request body must be declared JSON (415 otherwise), except OAuth's url-encoded forms
  on their own endpoints (`sandbox/oauth.py`).
- OAuth's metadata, token, registration and revocation endpoints skip the Origin rule: clients
  reach them cross-site by design, and they hold no ambient credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from protocol.pyfun import is_loopback_host
from sandbox.middleware import refuse
from sandbox.oauth import CROSS_SITE_PATHS, FORM_PATHS

#: Served without any of these checks: load balancers and Docker probe it by IP.
EXEMPT_PATHS = frozenset({"/healthz", "/openapi.json"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def split_host(value: str) -> tuple[str, str]:
    """(name, port) of a Host header or an origin's authority; lower-cased, IPv6 unbracketed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else ""
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        return name, port
    return value, ""


def normalize_origin(origin: str) -> str:
    """`scheme://host[:port]` without a trailing slash or a default port, lower-cased."""
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return origin.strip().lower().rstrip("/")
    name, port = split_host(parts.netloc)
    if (parts.scheme, port) in (("http", "80"), ("https", "443")):
        port = ""
    host = f"[{name}]" if ":" in name else name
    return f"{parts.scheme}://{host}{':' + port if port else ''}"


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which Host names and Origins a request may carry. `hosts` None means any name."""

    hosts: frozenset[str] | None
    origins: frozenset[str]
    any_origin: bool = False

    @classmethod
    def build(
        cls,
        *,
        listen_hosts: Iterable[str],
        allowed_hosts: Iterable[str],
        allowed_origins: Iterable[str],
        space_host: str | None = None,
    ) -> HostPolicy:
        """`listen_hosts` are the addresses the sandbox really listens on: loopback names
        only are served when every one of them is loopback and no `allowed_hosts` is set.
        `space_host` (a Space's `SPACE_HOST`) is added to whatever names are served."""
        configured = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        hosts: frozenset[str] | None
        if "*" in configured:
            hosts = None
        elif configured:
            hosts = configured
        elif all(is_loopback_host(h) for h in listen_hosts):
            hosts = LOOPBACK_NAMES
        else:
            hosts = None
        space = (space_host or "").strip().lower()
        if space and hosts is not None:
            hosts = hosts | {space}
        origins = [o for o in allowed_origins if o.strip()]
        if space:
            origins.append(f"https://{space}")
        return cls(
            hosts=hosts,
            origins=frozenset(normalize_origin(o) for o in origins if o.strip() != "*"),
            any_origin=any(o.strip() == "*" for o in origins),
        )

    def host_allowed(self, host: str) -> bool:
        if self.hosts is None:
            return True
        name, port = split_host(host)
        if not name:
            return False
        # An entry without a port allows the name on any port; with one, that port only.
        return name in self.hosts or (bool(port) and f"{name}:{port}" in self.hosts)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """The gateway's own origin (the name the request was sent to), or a listed one."""
        if self.any_origin:
            return True
        normalized = normalize_origin(origin)
        if normalized in self.origins:
            return True
        parts = urlsplit(normalized)
        if parts.scheme not in ("http", "https") or not host:
            return False
        return split_host(parts.netloc) == _with_default_port(split_host(host), parts.scheme)


def _with_default_port(host: tuple[str, str], scheme: str) -> tuple[str, str]:
    name, port = host
    if (scheme, port) in (("http", "80"), ("https", "443")):
        return name, ""
    return name, port


def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def is_form_type(headers: dict[bytes, bytes]) -> bool:
    """OAuth's url-encoded forms (RFC 6749, 7009); allowed on `FORM_PATHS` only. Those
    that a browser's page reaches with its cookies (the sign-in and consent pages) still
    need the gateway's own Origin."""
    media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return media == b"application/x-www-form-urlencoded"


def has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length", b"").strip()
    if length:
        return length != b"0"
    return b"transfer-encoding" in headers


class RequestGuard:
    """Plain ASGI middleware: 421 for a Host not served, 403 for a foreign Origin, 415 for a
    body not declared JSON. Runs before authentication, so no credential is ever needed to
    be refused, and nothing else runs for a refused request."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.policy.host_allowed(host):
            await refuse(send, 421, f"this gateway does not serve {host!r}", "misdirected_request")
            return
        origin = headers.get(b"origin")
        # OAuth's metadata, token, registration and revocation endpoints are meant to be
        # reached cross-site (a web client's page); they use no cookie and carry their own
        # credential (a code with its verifier, a token), and answer with CORS.
        cross_site = scope["path"] in CROSS_SITE_PATHS
        if (
            origin is not None
            and not cross_site
            and not self.policy.origin_allowed(origin.decode("latin-1"), host)
        ):
            await refuse(
                send,
                403,
                "cross-origin requests are refused; an operator can allow an origin with"
                " [HUB] allowed_origins or cors_origins",
                "forbidden",
            )
            return
        if (
            scope["method"] in _BODY_METHODS
            and has_body(headers)
            and not is_json_type(headers.get(b"content-type", b"").decode("latin-1"))
            and not (scope["path"] in FORM_PATHS and is_form_type(headers))
        ):
            await refuse(
                send,
                415,
                "send the request body as JSON, with Content-Type: application/json",
                "invalid_params",
            )
            return
        await self.app(scope, receive, send)
