"""The hub's resource identifier: the audience of every token it issues (RFC 8707).

`[HUB] public_url`, else `https://$SPACE_HOST` (a Hugging Face Space), else the address the
sandbox is bound to. The same URL is the issuer (SealGate is its own authorization server)
and covers `/mcp`, `/sse`, `/v1` and `/api`.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.pyfun import PyfunConfig, with_env_overrides


def resource_id(config: PyfunConfig, environ: Mapping[str, str]) -> str:
    hub = with_env_overrides(config, environ).hub
    if hub.public_url:
        return hub.public_url.rstrip("/")
    space = environ.get("SPACE_HOST", "").strip().strip("/")
    if space and "/" not in space and " " not in space:
        return f"https://{space.lower()}"
    host = f"[{hub.host}]" if ":" in hub.host else hub.host
    return f"http://{host}:{hub.port}"


def same_resource(requested: str | None, resource: str) -> bool:
    """A `resource` parameter names this hub: its identifier, or a URL under it (a client
    may name `/mcp`); trailing slashes and case of scheme and host do not matter."""
    if requested is None:
        return True
    want = _normal(resource)
    got = _normal(requested)
    return got == want or got.startswith(want + "/")


def _normal(url: str) -> str:
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return url.strip()
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")
