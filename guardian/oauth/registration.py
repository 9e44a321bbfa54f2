"""Limits on Dynamic Client Registration (RFC 7591), which anyone may call without a
credential: the shape metadata must have before any library reads it, how many registered
clients may exist, and when an unused registration expires.

Settings (environment, read by the guardian):
    SEALGATE_OAUTH_MAX_CLIENTS            registered clients kept at once (default 1000)
    SEALGATE_OAUTH_UNUSED_CLIENT_HOURS    a registration never used to sign in is removed
                                          after this many hours (default 24)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("sealgate.guardian.oauth")

MAX_CLIENTS_SETTING = "SEALGATE_OAUTH_MAX_CLIENTS"
UNUSED_HOURS_SETTING = "SEALGATE_OAUTH_UNUSED_CLIENT_HOURS"
DEFAULT_MAX_CLIENTS = 1000
DEFAULT_UNUSED_HOURS = 24.0
#: Client metadata is flat (strings, lists of strings, a JWK set): deeper is hostile.
MAX_DEPTH = 6


def max_clients(environ: Mapping[str, str]) -> int:
    return int(_number(environ, MAX_CLIENTS_SETTING, DEFAULT_MAX_CLIENTS, minimum=1))


def unused_ttl_s(environ: Mapping[str, str]) -> float:
    return _number(environ, UNUSED_HOURS_SETTING, DEFAULT_UNUSED_HOURS, minimum=0.001) * 3600


def _number(environ: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """A positive number from the environment; anything unusable keeps the default."""
    raw = environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= minimum:  # also refuses nan
        logger.warning("%s=%r is not a number >= %g; using %g", name, raw[:32], minimum, default)
        return default
    return value


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `value` nests (a scalar is 0), counting no further than `limit` + 1, so
    a hostile document costs at most `limit` levels of work and no recursion error."""
    level = 0
    layer: list[Any] = [value]
    while layer and level <= limit:
        children: list[Any] = []
        for item in layer:
            if isinstance(item, Mapping):
                children.extend(item.values())
            elif isinstance(item, list | tuple):
                children.extend(item)
        if not children and not any(isinstance(i, Mapping | list | tuple) for i in layer):
            break
        level += 1
        layer = children
    return level


def shape_problem(metadata: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of client metadata before its fields are checked, or
    None: too deep, or a `jwks` that is not a JWK set (an object whose `keys` lists objects)."""
    if depth(metadata) > MAX_DEPTH:
        return f"client metadata nests deeper than {MAX_DEPTH} levels"
    jwks = metadata.get("jwks")
    if jwks is not None:
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, Mapping) for k in keys):
            return "'jwks' must be a JWK set: an object whose 'keys' lists one or more keys"
    return None
