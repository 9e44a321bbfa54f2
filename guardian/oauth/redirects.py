"""Redirect URI rules (OAuth 2.1 section 2.3.1 and 7.5, RFC 8252 section 7.3).

A requested redirect URI must equal a registered one exactly, character for character, with
one exception: a native client's loopback redirect (`http://127.0.0.1`, `http://[::1]` or
`http://localhost`) matches on any port, because the port is chosen when the app starts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})
#: Schemes a browser must never be sent to with a code.
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob"})


def is_loopback_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_NAMES


def acceptable(uri: str) -> str | None:
    """Why `uri` cannot be registered as a redirect URI, or None: https anywhere, http only
    on loopback, or a private-use scheme of a native app (`cursor://...`); never a
    fragment."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a URI"
    if not parts.scheme or parts.fragment or "#" in uri:
        return "must be an absolute URI without a fragment"
    if parts.scheme in FORBIDDEN_SCHEMES:
        return f"may not use the {parts.scheme}: scheme"
    if parts.scheme == "https":
        return None if parts.hostname else "needs a host"
    if parts.scheme == "http":
        return None if is_loopback_redirect(uri) else "may use http only on loopback"
    return None


def matches(registered: list[str] | tuple[str, ...], requested: str) -> bool:
    """Exact match, or a loopback redirect equal but for its port."""
    if requested in registered:
        return True
    if not is_loopback_redirect(requested):
        return False
    want = _without_port(requested)
    return any(is_loopback_redirect(r) and _without_port(r) == want for r in registered)


def _without_port(uri: str) -> tuple[str, str, str, str]:
    parts = urlsplit(uri)
    return (parts.scheme, parts.hostname or "", parts.path, parts.query)


def host_of(uri: str) -> str:
    """What the consent page names: the host a code will be sent to (or the app scheme)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return parts.netloc
    return f"{parts.scheme}: (an app on this device)"
