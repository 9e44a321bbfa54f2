"""Operator commands of the admin socket: users, tokens, sessions, secrets, providers,
audit, usage and reload. Only the guardian's own uid or root reach them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guardian.handlers import CallContext
from guardian.secretstore import SecretStore, SecretStoreError, parse_master_key
from guardian.snapshot import Snapshot
from protocol.errors import Forbidden, InvalidParams, NotFound
from protocol.pyfun import PyfunError, parse


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k not in ("password_hash", "token_hash")} for row in rows
    ]


async def users_add(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    switched_on = await ctx.services.accounts.add_user(
        params["name"], params.get("password"), params.get("role") or "user"
    )
    return {"ok": True, "auth_switched_on": switched_on}


async def users_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"users": _rows(await ctx.services.storage.list_users())}


async def users_lock(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.accounts.lock(params["name"], True)
    return {"ok": True}


async def users_unlock(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.accounts.lock(params["name"], False)
    return {"ok": True}


async def users_delete(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    accounts = ctx.services.accounts
    await accounts.delete_user(params["name"])
    # The last user gone: auth is off, and on loopback the gateway is open again.
    off = not accounts.enabled
    return {"ok": True, "auth_switched_off": off, "open_mode": off and accounts.open_possible()}


async def users_passwd(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.accounts.set_password(params["name"], params["password"])
    return {"ok": True}


async def users_role(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.accounts.set_role(params["name"], params["role"])
    return {"ok": True}


async def tokens_issue(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    expires = params.get("expires_s")
    return await ctx.services.tokens.issue(
        params["user"], float(expires) if expires else None, params.get("label") or ""
    )


async def tokens_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": _rows(await ctx.services.storage.list_tokens(params.get("user")))}


async def tokens_revoke(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    await ctx.services.tokens.revoke(params["token"])
    return {"ok": True}


async def sessions_list(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"sessions": _rows(await ctx.services.storage.list_sessions())}


def providers(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every provider with why it is (in)active and where its keys came from; no values."""
    snapshot = ctx.services.live.snapshot
    secrets = snapshot.secrets
    key_status = ctx.services.router.key_status()
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
    rows = await ctx.services.storage.audit_since(
        float(params.get("since") or 0),
        params.get("after_id") or 0,
        params.get("limit") or 1000,
        user=params.get("user") or None,
        tool=params.get("tool") or None,
    )
    return {"entries": rows}


async def usage_report(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"rows": await ctx.services.storage.usage_report(float(params["since"]), params["by"])}


def config_check(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Parse the text and show what would be active with the secrets loaded now."""
    try:
        config = parse(params["text"], params["source"])
    except PyfunError as exc:
        raise InvalidParams(str(exc)) from None
    snapshot = Snapshot.build(config, ctx.services.live.snapshot.secrets)
    return {
        "ok": True,
        "sha256": config.sha256,
        "warnings": list(config.warnings),
        "translations": list(config.translations),
        "tools": list(snapshot.tools),
        "llm_providers": list(snapshot.llm_providers),
        "search_providers": list(snapshot.search_providers),
    }


def config_reload(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return ctx.services.live.reload()
    except PyfunError as exc:
        raise InvalidParams(f"reload refused, the old configuration stays: {exc}") from None


def _store(ctx: CallContext) -> SecretStore:
    return ctx.services.store


async def _store_action(ctx: CallContext, action: str, name: str, run: Any) -> Any:
    """Run a store change, audit it, and rebuild the snapshot so it takes effect now."""
    try:
        result = await run()
    except SecretStoreError as exc:
        await ctx.services.storage.add_audit("operator", action, "refused", "", f"{name}: {exc}")
        raise Forbidden(str(exc)) from None
    await ctx.services.storage.add_audit("operator", action, "ok", "", name)
    ctx.services.live.refresh_secrets()
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
    rows = await ctx.services.storage.all_secret_versions() if store.enabled else []
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
    rows = await ctx.services.storage.get_secret_versions(params["name"])
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
    revoked = await ctx.services.sessions.revoke(user, session_id)
    return {"revoked": revoked}
