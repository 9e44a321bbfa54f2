"""The guardian's RPC handlers. Each gets already-validated params and re-checks its own.

Handlers listed as inline in `guardian.dispatch` are plain functions that do no I/O; they
run on the connection's reader without a task of their own.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from guardian.router import Router
from guardian.state import GuardianState
from protocol import PROTOCOL_VERSION, __version__
from protocol.errors import Internal, InvalidParams
from protocol.methods import Surface

Emit = Callable[[Any], Awaitable[None]]


@dataclass(slots=True)
class CallContext:
    """Who is calling (the connection's surface and the peer's kernel-reported identity) and,
    for a streaming call, how to send a chunk."""

    state: GuardianState
    surface: Surface
    peer_pid: int
    peer_uid: int
    emit: Emit | None = None


def _router(ctx: CallContext) -> Router:
    if ctx.state.router is None:
        raise Internal("the guardian is not ready for provider calls")
    return ctx.state.router


def hello(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    if params["protocol_version"] != PROTOCOL_VERSION:
        raise InvalidParams(
            f"protocol version {params['protocol_version']} is not supported; this guardian"
            f" speaks {PROTOCOL_VERSION}"
        )
    if ctx.surface is Surface.SANDBOX and params["client"] != "sandbox":
        raise InvalidParams("only the sandbox connects on this socket")
    snapshot = ctx.state.snapshot
    return {
        "protocol_version": PROTOCOL_VERSION,
        "guardian_version": __version__,
        "llm_providers": list(snapshot.llm_providers),
        "search_providers": list(snapshot.search_providers),
        "tools": list(snapshot.tools),
    }


def health(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "protocol_version": PROTOCOL_VERSION,
        "uptime_s": ctx.state.uptime_s,
        "python": platform.python_version(),
        "pid": os.getpid(),
    }


def status(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    state = ctx.state
    snapshot = state.snapshot
    return {
        "version": __version__,
        "uptime_s": state.uptime_s,
        "pid": os.getpid(),
        "config_path": str(state.config_path),
        "config_sha256": snapshot.config.sha256,
        "sandbox_connections": state.sandbox_connections,
        "llm_providers": list(snapshot.llm_providers),
        "search_providers": list(snapshot.search_providers),
        "tools": list(snapshot.tools),
        "database": state.database,
    }


async def llm_complete(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _router(ctx).complete(params)


async def llm_stream(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    if ctx.emit is None:
        raise Internal("llm.stream was dispatched without a stream")
    return await _router(ctx).complete(params, ctx.emit)


async def search_web(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _router(ctx).search(params)


def models_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return _router(ctx).models_info(params)
