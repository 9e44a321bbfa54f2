"""Who is calling: the credential as received, the client's address and User-Agent.

`X-Forwarded-For` and `X-Forwarded-Proto` are believed only from `[HUB] trusted_proxies`;
otherwise the socket peer is the client. On a Hugging Face Space (`SPACE_HOST` set) with no
`trusted_proxies`, the Space's proxy is the only way in and its addresses are not published:
there the last `X-Forwarded-For` hop (the one the Space's proxy appended) is the client.
Each header is read whole: several field lines of one name are one comma-separated list
(RFC 9110, 5.3), so a proxy that adds a line of its own, rather than appending to the
client's, still has the last word.
The sandbox never decides whose a credential is: it forwards it, and the guardian resolves
it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import Scope

from sandbox.guardian_link import Caller

SESSION_COOKIE = "sg_session"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Proxies:
    networks: tuple[Network, ...] = ()
    #: Behind exactly one proxy we cannot name (a Space's): believe its last hop only.
    one_unnamed_hop: bool = False

    @classmethod
    def parse(cls, cidrs: Iterable[str], *, space_host: str | None = None) -> Proxies:
        networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        return cls(networks, one_unnamed_hop=bool(space_host) and not networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def forwarded_list(headers: Headers, name: str) -> list[str]:
    """Every entry of every `name` field line, in order, as one list (RFC 9110, 5.3): a
    client's own line comes before the lines the proxies added."""
    return [
        entry.strip()
        for line in headers.getlist(name)
        for entry in line.split(",")
        if entry.strip()
    ]


def _proto(protos: list[str], position: int, scheme: str) -> str:
    """The scheme the proxy that took the client's connection saw. Proxies that append put
    it `position` entries from the right (the client's hop in `X-Forwarded-For`); a proxy
    that sets one value overwrites what the client sent, so its last entry is ours."""
    if not protos:
        return scheme
    proto = protos[-position] if 0 < position <= len(protos) else protos[-1]
    proto = proto.lower()
    return proto if proto in ("http", "https") else scheme


def client_address(scope: Scope, proxies: Proxies) -> tuple[str, str]:
    """(client IP, scheme) for a request, honouring forwarded headers from trusted proxies."""
    peer = scope["client"][0] if scope.get("client") else ""
    scheme = scope.get("scheme", "http")
    if proxies.one_unnamed_hop:
        return _last_hop(Headers(scope=scope), peer, scheme)
    if not proxies.networks or not proxies.trusts(peer):
        return peer, scheme
    headers = Headers(scope=scope)
    hops = forwarded_list(headers, "x-forwarded-for")
    client, position = peer, 0
    for hop in reversed(hops):  # the rightmost hop not ours is the client
        client = hop
        position += 1
        if not proxies.trusts(hop):
            break
    return client, _proto(forwarded_list(headers, "x-forwarded-proto"), position, scheme)


def _last_hop(headers: Headers, peer: str, scheme: str) -> tuple[str, str]:
    """The address the one proxy in front appended (the last entry), if it is an address."""
    hops = forwarded_list(headers, "x-forwarded-for")
    client = peer
    if hops:
        try:
            client = str(ipaddress.ip_address(hops[-1]))
        except ValueError:
            client = peer
    return client, _proto(forwarded_list(headers, "x-forwarded-proto"), 1, scheme)


def credential_of(headers: Headers) -> str | None:
    """`X-API-Key`, else a bearer token, else the session cookie, exactly as sent.

    `X-API-Key` comes first: on a private Hugging Face Space the `Authorization` header
    carries the person's Hugging Face token (the Space's own gate), never ours.
    """
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == SESSION_COOKIE and value:
            return value
    return None


def caller_of(scope: Scope, proxies: Proxies) -> Caller:
    """Who sent this request, worked out once per request and kept in `scope["state"]` (the
    auth gate, the routes and the MCP tools all ask)."""
    state = scope.setdefault("state", {})
    known = state.get("caller")
    if isinstance(known, Caller):
        return known
    headers = Headers(scope=scope)
    ip, _ = client_address(scope, proxies)
    caller = Caller(
        ip=ip, user_agent=headers.get("user-agent", ""), credential=credential_of(headers)
    )
    state["caller"] = caller
    return caller
