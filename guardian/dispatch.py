"""The permit table: which requests each socket may make, when, and who answers them.

Like OpenSSH's privsep monitor, nothing is implicit. A method absent from a surface's table,
or called in a phase its permit does not list, or a second time when it may run once, is a
protocol violation: the server closes that connection and logs a security event. A permitted
method with bad params gets a typed `invalid_params` answer, because params often carry user
input that a sound sandbox passes through.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from guardian import handlers
from guardian.handlers import CallContext
from protocol.methods import (
    HEALTH,
    HELLO,
    LLM_COMPLETE,
    LLM_STREAM,
    MODELS_INFO,
    SEARCH_WEB,
    STATUS,
    MethodSpec,
    Surface,
)


class Phase(enum.Enum):
    NEW = "new"  # connected; only `hello` is allowed
    READY = "ready"  # hello answered; the surface's other methods are allowed


InlineHandler = Callable[[CallContext, dict[str, Any]], Any]
TaskHandler = Callable[[CallContext, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Permit:
    spec: MethodSpec
    phases: frozenset[Phase]
    once: bool = False
    #: An inline handler is a plain function without I/O, answered on the reader itself;
    #: any other runs in its own task so a slow call never blocks the connection.
    inline: InlineHandler | None = None
    task: TaskHandler | None = None


_NEW = frozenset({Phase.NEW})
_READY = frozenset({Phase.READY})

#: Sealed calls, the same on both sockets: operators may test a provider from the CLI.
_SEALED: Mapping[str, Permit] = {
    "llm.complete": Permit(spec=LLM_COMPLETE, phases=_READY, task=handlers.llm_complete),
    "llm.stream": Permit(spec=LLM_STREAM, phases=_READY, task=handlers.llm_stream),
    "search.web": Permit(spec=SEARCH_WEB, phases=_READY, task=handlers.search_web),
    "models.info": Permit(spec=MODELS_INFO, phases=_READY, inline=handlers.models_info),
}

SANDBOX_PERMITS: Mapping[str, Permit] = {
    "hello": Permit(spec=HELLO, phases=_NEW, once=True, inline=handlers.hello),
    "health": Permit(spec=HEALTH, phases=_READY, inline=handlers.health),
    **_SEALED,
}

ADMIN_PERMITS: Mapping[str, Permit] = {
    "hello": Permit(spec=HELLO, phases=_NEW, once=True, inline=handlers.hello),
    "health": Permit(spec=HEALTH, phases=_READY, inline=handlers.health),
    "status": Permit(spec=STATUS, phases=_READY, inline=handlers.status),
    **_SEALED,
}

PERMITS: Mapping[Surface, Mapping[str, Permit]] = {
    Surface.SANDBOX: SANDBOX_PERMITS,
    Surface.ADMIN: ADMIN_PERMITS,
}

#: Notifications a surface may send (no answer is ever sent to one).
NOTIFICATIONS: Mapping[Surface, frozenset[str]] = {
    Surface.SANDBOX: frozenset({"cancel"}),
    Surface.ADMIN: frozenset(),
}
