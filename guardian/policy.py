"""Who may do what: the role checks made for every sealed call, before and while a
provider chain is chosen. Limits themselves (counters) live in `guardian.limits`."""

from __future__ import annotations

from guardian.identity.principal import BUILTIN_ROLES, Principal
from guardian.limits import Limits
from guardian.oauth import scopes
from protocol.errors import Forbidden
from protocol.pyfun import ProviderConfig, PyfunConfig, RoleConfig


def allows(names: tuple[str, ...], value: str) -> bool:
    return "*" in names or value in names


def missing_scope(principal: Principal, tool: str, config: PyfunConfig) -> str | None:
    """The OAuth scope that would open `tool` when the token's scopes are what keep it shut
    (the role itself allows the tool); None when the role is to blame, or for no token."""
    if principal.scopes is None or tool in scopes.tools_for(principal.scopes, config):
        return None
    whole = config.roles.get(principal.role.name) or BUILTIN_ROLES.get(principal.role.name)
    if whole is None or not allows(whole.tools, tool):
        return None
    return next((s for s in scopes.SCOPES if tool in scopes.tools_for((s,), config)), None)


def tool_refusal(principal: Principal, tool: str, config: PyfunConfig | None) -> str:
    """Why `principal` may not use `tool`, blaming what really refuses it: an OAuth token's
    missing scope (sign in again and allow it), else the role."""
    needed = missing_scope(principal, tool, config) if config is not None else None
    if needed is not None:
        granted = ", ".join(principal.scopes or ()) or "none"
        return (
            f"this OAuth token lacks the {needed!r} scope that tool {tool!r} needs (it was"
            f" granted: {granted}); sign in again and allow {needed!r}"
        )
    return f"role {principal.role.name!r} may not use tool {tool!r}"


async def admit(
    limits: Limits | None, principal: Principal, tool: str, config: PyfunConfig | None = None
) -> None:
    """The checks made before any provider is chosen: tool, principal rate, budget."""
    role = principal.role
    if not allows(role.tools, tool):
        raise Forbidden(tool_refusal(principal, tool, config))
    if limits is None:
        return
    if role.requests_per_min:
        await limits.hit(
            f"principal:{principal.key}", role.requests_per_min, f"principal {principal.name}"
        )
    if role.monthly_budget_usd is not None:
        await limits.check_budget(principal.key, role.monthly_budget_usd)


def refusal(
    role: RoleConfig, provider: ProviderConfig, model: str, pinned: bool, config: PyfunConfig
) -> str | None:
    """Why `role` may not send `model` to `provider`, or None if it may. When the caller
    named this provider or model itself (`pinned`), the refusal is raised instead."""
    reason = None
    if not allows(role.providers, provider.name):
        reason = f"provider {provider.name!r} is not allowed for role {role.name!r}"
    elif model and not allows(role.models, model):
        reason = f"model {model!r} is not allowed for role {role.name!r}"
    elif role.monthly_budget_usd is not None and model:
        entry = config.models.get(model)
        if entry is None or entry.cost_input_per_1m is None or entry.cost_output_per_1m is None:
            reason = (
                f"model {model!r} has no cost entry, and a principal with a budget"
                " may only use models that have one"
            )
    if reason and pinned:
        raise Forbidden(reason)
    return reason
