"""The guardian's RPC handlers. Each gets already-validated params and re-checks its own.

Handlers listed as inline in `guardian.dispatch` are plain functions that do no I/O; they
run on the connection's reader without a task of their own.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.auth import OPERATOR, Auth, Principal
from guardian.dbquery import QuerySettings
from guardian.router import Router
from guardian.secretstore import SecretStore, SecretStoreError, parse_master_key
from guardian.state import GuardianState
from guardian.storage import Storage
from protocol import PROTOCOL_VERSION, __version__
from protocol.errors import (
    BudgetExceeded,
    Forbidden,
    Internal,
    InvalidParams,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from protocol.methods import Surface
from protocol.pyfun import PyfunError

#: Refusals that are written to the audit log with the caller's address.
AUDITED = (Forbidden, RateLimited, BudgetExceeded, Unauthenticated)

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


def _auth(ctx: CallContext) -> Auth:
    if ctx.state.auth is None:
        raise Internal("the guardian is not ready for authentication")
    return ctx.state.auth


def _storage(ctx: CallContext) -> Storage:
    if ctx.state.storage is None:
        raise Internal("the guardian has no database")
    return ctx.state.storage


async def principal_of(ctx: CallContext, params: dict[str, Any]) -> Principal:
    """Operators on the admin socket act as themselves; sandbox calls carry a credential
    that only the guardian resolves."""
    if ctx.surface is Surface.ADMIN:
        return OPERATOR
    return await _auth(ctx).resolve(params["caller"])


async def _audited(ctx: CallContext, params: dict[str, Any], action: str, run: Any) -> Any:
    """Run a sealed call for its principal; refusals go to the audit log."""
    caller = params.get("caller") or {}
    ip, tool = caller.get("ip", ""), params.get("tool", "")
    try:
        principal = await principal_of(ctx, params)
    except Unauthenticated as exc:
        await _storage(ctx).add_audit("-", action, exc.code.value, ip, exc.message, tool)
        raise
    try:
        return await run(principal)
    except AUDITED as exc:
        await _storage(ctx).add_audit(principal.name, action, exc.code.value, ip, exc.message, tool)
        raise


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
    router = _router(ctx)
    return await _audited(
        ctx, params, "llm.complete", lambda principal: router.complete(params, principal)
    )


async def llm_stream(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    emit = ctx.emit
    if emit is None:
        raise Internal("llm.stream was dispatched without a stream")
    router = _router(ctx)
    return await _audited(
        ctx, params, "llm.stream", lambda principal: router.complete(params, principal, emit)
    )


async def llm_embed(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    router = _router(ctx)
    return await _audited(
        ctx, params, "llm.embed", lambda principal: router.embed(params, principal)
    )


async def search_web(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    router = _router(ctx)
    return await _audited(
        ctx, params, "search.web", lambda principal: router.search(params, principal)
    )


async def models_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    principal = await principal_of(ctx, params)
    return _router(ctx).models_info(params, principal)


async def db_query(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    snapshot = ctx.state.snapshot
    runner = ctx.state.queries
    if runner is None or "db_query" not in snapshot.tools:
        raise NotFound(
            "db_query is not configured: set DB_QUERY_URL or DATABASE_URL and [DB_QUERY] tables"
        )
    try:
        settings = QuerySettings(snapshot.config.db_query)
    except ValueError as exc:
        raise Internal(f"[DB_QUERY] is not usable: {exc}") from None

    async def run(principal: Principal) -> dict[str, Any]:
        await _router(ctx).admit(principal, "db_query")
        return await runner.run(params["sql"], settings, params.get("max_rows"))

    return await _audited(ctx, params, "db.query", run)


# authentication --------------------------------------------------------------------------
async def auth_login(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    caller = params["caller"]
    return await _auth(ctx).login(
        params["username"], params["password"], caller["ip"], caller["user_agent"]
    )


async def auth_verify(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    principal = await principal_of(ctx, params)
    return {**principal.to_wire(), "auth_enabled": await _auth(ctx).refresh()}


async def auth_logout(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    credential = params["caller"].get("credential")
    if not credential:
        raise InvalidParams("there is no session to end")
    return {"ok": await _auth(ctx).logout(credential, params["caller"]["ip"])}


# operators: users, tokens, sessions --------------------------------------------------------
def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k not in ("password_hash", "token_hash")} for row in rows
    ]


async def users_add(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).add_user(params["name"], params.get("password"), params.get("role") or "user")
    return {"ok": True}


async def users_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"users": _rows(await _storage(ctx).list_users())}


async def users_lock(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).lock(params["name"], True)
    return {"ok": True}


async def users_unlock(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).lock(params["name"], False)
    return {"ok": True}


async def users_delete(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).delete_user(params["name"])
    return {"ok": True}


async def users_passwd(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).set_password(params["name"], params["password"])
    return {"ok": True}


async def users_role(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).set_role(params["name"], params["role"])
    return {"ok": True}


async def tokens_issue(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    expires = params.get("expires_s")
    return await _auth(ctx).issue_token(
        params["user"], float(expires) if expires else None, params.get("label") or ""
    )


async def tokens_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": _rows(await _storage(ctx).list_tokens(params.get("user")))}


async def tokens_revoke(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await _auth(ctx).revoke_token(params["token"])
    return {"ok": True}


async def sessions_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": _rows(await _storage(ctx).list_sessions())}


def providers(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every provider with why it is (in)active and where its keys came from; no values."""
    snapshot = ctx.state.snapshot
    secrets = snapshot.secrets
    key_status = _router(ctx).key_status()
    listing = []
    for provider in (
        *snapshot.config.llm_providers.values(),
        *snapshot.config.search_providers.values(),
    ):
        active = provider.name in (*snapshot.llm_providers, *snapshot.search_providers)
        keys = [
            {
                "name": name,
                "present": name in secrets,
                "origin": secrets.origin(name),
                "status": key_status.get(provider.name, {}).get(name, "ok")
                if name in secrets
                else "missing",
            }
            for name in provider.env_keys
        ]
        if not provider.active:
            reason = 'inactive in config (active = "false")'
        elif active:
            reason = "" if provider.requires_key else "no key needed"
        else:
            reason = f"no key: none of {', '.join(provider.env_keys)} is set"
        listing.append(
            {
                "name": provider.name,
                "kind": provider.kind,
                "api": provider.api,
                "base_url": provider.base_url,
                "active": active,
                "reason": reason,
                "fallback_to": provider.fallback_to,
                "keys": keys,
            }
        )
    return {"providers": listing}


async def audit_tail(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    rows = await _storage(ctx).audit_since(
        float(params.get("since") or 0), params.get("after_id") or 0, params.get("limit") or 1000
    )
    user, tool = params.get("user"), params.get("tool")
    rows = [
        r for r in rows if (not user or r["principal"] == user) and (not tool or r["tool"] == tool)
    ]
    return {"entries": rows}


def _group_key(row: dict[str, Any], by: str) -> str:
    if by == "day":
        return datetime.datetime.fromtimestamp(row["ts"], datetime.UTC).strftime("%Y-%m-%d")
    return str(row[{"user": "principal"}.get(by, by)] or "-")


async def usage_report(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for row in await _storage(ctx).usage_since(float(params["since"])):
        key = _group_key(row, params["by"])
        group = groups.setdefault(
            key,
            {
                "key": key,
                "calls": 0,
                "errors": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
            },
        )
        group["calls"] += 1
        group["errors"] += row["outcome"] != "ok"
        group["input_tokens"] += row["input_tokens"]
        group["output_tokens"] += row["output_tokens"]
        group["cost_usd"] = round(group["cost_usd"] + (row["cost_usd"] or 0.0), 8)
    return {"rows": sorted(groups.values(), key=lambda g: g["key"])}


def config_reload(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    if ctx.state.reload is None:
        raise Internal("this guardian cannot reload")
    try:
        return ctx.state.reload()
    except PyfunError as exc:
        raise InvalidParams(f"reload refused, the old configuration stays: {exc}") from None


def _store(ctx: CallContext) -> SecretStore:
    if ctx.state.store is None:
        raise Internal("this guardian has no secret store")
    return ctx.state.store


async def _store_action(ctx: CallContext, action: str, name: str, run: Any) -> Any:
    """Run a store change, audit it, and rebuild the snapshot so it takes effect now."""
    try:
        result = await run()
    except SecretStoreError as exc:
        await _storage(ctx).add_audit("operator", action, "refused", "", f"{name}: {exc}")
        raise Forbidden(str(exc)) from None
    await _storage(ctx).add_audit("operator", action, "ok", "", name)
    if ctx.state.refresh_secrets is not None:
        ctx.state.refresh_secrets()
    return result


async def secrets_set(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    if not name.replace("_", "").isalnum():
        raise InvalidParams("a secret name is letters, digits and _ (like an env variable)")
    version = await _store_action(
        ctx, "secrets.set", name, lambda: _store(ctx).set(name, params["value"])
    )
    return {"version": version}


async def secrets_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    store = _store(ctx)
    rows = await _storage(ctx).all_secret_versions() if store.enabled else []
    latest = {}
    for row in store.listing(rows):
        latest[row["name"]] = {**row, "versions": row["version"]}
    return {
        "secrets": list(latest.values()),
        "enabled": store.enabled,
        "why_disabled": store.why_disabled,
    }


async def secrets_history(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    store = _store(ctx)
    rows = await _storage(ctx).get_secret_versions(params["name"])
    if not rows:
        raise NotFound(f"no secret named {params['name']}")
    return {"versions": store.listing(rows)}


async def secrets_delete(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params["name"]
    await _store_action(ctx, "secrets.delete", name, lambda: _store(ctx).delete(name))
    return {"ok": True}


async def secrets_rekey(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    try:
        new_key = parse_master_key(Path(params["new_key_file"]).read_text())
    except OSError as exc:
        raise InvalidParams(f"cannot read {params['new_key_file']}: {exc.strerror}") from None
    except SecretStoreError as exc:
        raise InvalidParams(str(exc)) from None
    count = await _store_action(ctx, "secrets.rekey", "*", lambda: _store(ctx).rekey(new_key))
    return {"count": count}


async def sessions_revoke(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    user, session_id = params.get("user"), params.get("id")
    if bool(user) == bool(session_id):
        raise InvalidParams("name either a user or a session id")
    revoked = await _storage(ctx).revoke_sessions(user, session_id)
    _auth(ctx).forget()
    return {"revoked": revoked}
