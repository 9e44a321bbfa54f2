"""A provider block's addresses: its base URL (https, or http to a loopback host only; no
credentials, query or fragment; retired endpoints replaced) and the extra headers it may
send (never the ones the guardian fills in from env_key)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from protocol.pyfun.reader import Reader
from protocol.pyfun.typed import KNOWN_BASE_URLS, RETIRED_HOSTS


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address (what \"local only\" means everywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(reader: Reader, url: str, allow_insecure: bool, key: str = "base_url") -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise reader.error(key, f"{key} {url!r} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise reader.error(key, f"{key} {url!r} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise reader.error(key, f"{key} must not carry credentials; use env_key")
    if parts.query or parts.fragment:
        raise reader.error(key, f"{key} must not carry a query or fragment")
    if parts.scheme == "http" and not (allow_insecure and is_loopback_host(host)):
        raise reader.error(
            key,
            f"{key} {url!r} must use https (plain http only for a loopback host with"
            ' allow_insecure = "true")',
        )


def provider_headers(reader: Reader) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for key in reader.section.values:
        if key.startswith("header_"):
            name = reader.string(key)
            # header_http_referer = "..." -> HTTP-Referer
            header = "-".join(part.capitalize() for part in key[len("header_") :].split("_"))
            if header.lower() in (
                "authorization",
                "x-api-key",
                "x-goog-api-key",
                "x-subscription-token",
            ):
                raise reader.error(key, f"{header} is set by the guardian from env_key")
            if "\n" in name or "\r" in name:
                raise reader.error(key, "header values must be one line")
            headers.append((header, name))
    return tuple(headers)


def provider_base_url(reader: Reader, name: str) -> str:
    base_url = reader.string("base_url", KNOWN_BASE_URLS.get(name, "")).rstrip("/")
    host = (urlsplit(base_url).hostname or "") if base_url else ""
    current = RETIRED_HOSTS.get(host.lower())
    if current:
        reader.warnings.append(
            f"{reader.where('base_url')}: base_url {base_url!r} is a retired endpoint; using"
            f" {current} (write that to silence this warning)"
        )
        return current
    return base_url
