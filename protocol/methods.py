"""Every RPC method SealGate knows: its name, parameter schema, result schema and surface.

The guardian serves two surfaces. `SANDBOX` is what the internet-facing sandbox may ask on
`guardian.sock`; `ADMIN` is what operators (and the supervisor) may ask on `admin.sock`. A
method listed for neither does not exist. Handlers live in `guardian.dispatch`; this module
only says what a well-formed call looks like, so both processes agree on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.schema import Field, Schema


class Surface(enum.Enum):
    SANDBOX = "sandbox"  # guardian.sock: the sandbox uid only
    ADMIN = "admin"  # admin.sock: the guardian's own uid or root


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSpec:
    name: str
    params: Schema
    result: Schema
    surfaces: frozenset[Surface]
    streaming: bool = False
    doc: str = ""


_BOTH = frozenset({Surface.SANDBOX, Surface.ADMIN})
_ADMIN = frozenset({Surface.ADMIN})

_NAMES = Field(type=list, items=str, max_len=1024)

HELLO = MethodSpec(
    name="hello",
    doc="Protocol handshake; the first call on every connection, and only once.",
    params={
        "protocol_version": Field(type=int, min=1, max=1_000_000),
        "client": Field(type=str, max_len=32, choices=frozenset({"sandbox", "ctl", "supervisor"})),
    },
    result={
        "protocol_version": Field(type=int),
        "guardian_version": Field(type=str),
        "llm_providers": _NAMES,
        "search_providers": _NAMES,
        "tools": _NAMES,
    },
    surfaces=_BOTH,
)

HEALTH = MethodSpec(
    name="health",
    doc="Liveness and versions; cheap enough to call on every health check.",
    params={},
    result={
        "status": Field(type=str),
        "version": Field(type=str),
        "protocol_version": Field(type=int),
        "uptime_s": Field(type=float),
        "python": Field(type=str),
        "pid": Field(type=int),
    },
    surfaces=_BOTH,
)

STATUS = MethodSpec(
    name="status",
    doc="Operator view: versions, uptime, sandbox link, config path and hash, providers.",
    params={},
    result={
        "version": Field(type=str),
        "uptime_s": Field(type=float),
        "pid": Field(type=int),
        "config_path": Field(type=str),
        "config_sha256": Field(type=str),
        "sandbox_connections": Field(type=int),
        "llm_providers": _NAMES,
        "search_providers": _NAMES,
        "tools": _NAMES,
        "database": Field(type=str),
    },
    surfaces=_ADMIN,
)

METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in (HELLO, HEALTH, STATUS)}


def methods_for(surface: Surface) -> dict[str, MethodSpec]:
    """The methods a connection on `surface` may call."""
    return {name: spec for name, spec in METHODS.items() if surface in spec.surfaces}
