"""How the original Universal MCP Hub's keys are read: its spellings translated (and
recorded for `config check`), the keys SealGate does without ignored with a reason, and
the attribution headers it sent to OpenRouter."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit

from protocol.pyfun.reader import Reader
from protocol.pyfun.typed import LOG_LEVELS, HubConfig, ProviderConfig

_VERSION_HEADER = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


#: The original hub's [HUB] keys SealGate does without, and why.
HUB_IGNORED = {
    "version": "SealGate reports its own version",
    "description": "the status page and health_check describe SealGate itself",
    "mode": "SealGate has one mode; what runs depends on the keys the guardian finds",
    "stateless": "/mcp serves clients with and without sessions",
}


def hub_transport(reader: Reader) -> str:
    transport = reader.string("transport", "http").lower()
    if transport == "stdio":
        reader.warn(
            "transport",
            "SealGate serves HTTP only; for a client that starts local commands run"
            " `sealgate-ctl mcp-stdio --url URL` (the stdio bridge)",
        )
        return "http"
    if transport in ("sse", "streamable-http"):
        reader.translate("transport", "/sse and /mcp (Streamable HTTP) are both served anyway")
    return reader.choice("transport", frozenset({"http", "sse", "streamable-http"}), "http")


def hub_space_url(reader: Reader) -> str:
    url = reader.string("space_url")
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or any(c in url for c in "\r\n"):
        reader.warn("space_url", f"{url!r} is not an http(s) URL")
        return ""
    reader.translate("space_url", "sent to OpenRouter as its HTTP-Referer attribution header")
    return url


def api_version_header(reader: Reader, api: str) -> str:
    version = reader.string("api_version_header")
    if not version:
        return ""
    if api != "anthropic":
        reader.warn("api_version_header", "only Anthropic's API takes a version header")
        return ""
    if not _VERSION_HEADER.match(version):
        raise reader.error("api_version_header", f"api_version_header {version!r} is not a version")
    reader.translate("api_version_header", f"sent as anthropic-version: {version}")
    return version


def cost_per_1m(reader: Reader, side: str) -> float | None:
    """A cost per million tokens, from `cost_<side>_per_1m` or the original's `_per_1k`."""
    per_1k = reader.decimal(f"cost_{side}_per_1k")
    if per_1k is None:
        return reader.number(f"cost_{side}_per_1m", None)
    per_1m = per_1k * 1000  # exact in decimal; rounded to a float once
    reader.translate(f"cost_{side}_per_1k", f"cost_{side}_per_1m = {per_1m.normalize():f}")
    return float(per_1m)


def read_log_level(reader: Reader) -> str:
    """[DEBUG] DEBUG / DEBUG_LEVEL as a log level; "" leaves the default."""
    debug = reader.boolean("debug", False)
    level = reader.string("debug_level").lower()
    level = {"warn": "warning", "critical": "error"}.get(level, level)
    if level and level not in LOG_LEVELS:
        reader.warn("debug_level", f"{level!r} is not one of {', '.join(sorted(LOG_LEVELS))}")
        level = ""
    chosen = level or ("debug" if debug else "")
    if chosen:
        reader.translate(
            "debug_level" if level else "debug",
            f'log_level = "{chosen}" (unless [HUB] log_level or HUB_LOG_LEVEL says otherwise)',
        )
    return chosen


def with_attribution(
    providers: dict[str, ProviderConfig], hub: HubConfig, name_set: bool
) -> dict[str, ProviderConfig]:
    """OpenRouter's attribution headers from [HUB] (as the original hub sent them), unless
    a provider block sets its own."""
    wanted = []
    if hub.space_url:
        wanted.append(("HTTP-Referer", hub.space_url))
    if name_set and "\n" not in hub.name and "\r" not in hub.name:
        wanted.append(("X-Title", hub.name))
    for name, provider in providers.items():
        host = (urlsplit(provider.base_url).hostname or "").lower()
        if name != "openrouter" and host != "openrouter.ai":
            continue
        present = {header.lower() for header, _ in provider.headers}
        extra = tuple(pair for pair in wanted if pair[0].lower() not in present)
        if extra:
            providers[name] = replace(provider, headers=provider.headers + extra)
    return providers
