"""Who may do what: the role checks made for every sealed call, before and while a
provider chain is chosen. Limits themselves (counters) live in `guardian.limits`."""

from __future__ import annotations

from guardian.auth import Principal
from guardian.limits import Limits
from protocol.errors import Forbidden
from protocol.pyfun import ProviderConfig, PyfunConfig, RoleConfig


def allows(names: tuple[str, ...], value: str) -> bool:
    return "*" in names or value in names


async def admit(limits: Limits | None, principal: Principal, tool: str) -> None:
    """The checks made before any provider is chosen: tool, principal rate, budget."""
    role = principal.role
    if not allows(role.tools, tool):
        raise Forbidden(f"role {role.name!r} may not use tool {tool!r}")
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
