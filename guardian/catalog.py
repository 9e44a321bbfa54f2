"""The model catalog a principal may see: `get_model_info`, `/v1/models`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guardian import policy
from guardian.model_info import model_entry
from guardian.snapshot import Snapshot
from protocol.errors import NotFound
from protocol.pyfun import RoleConfig


def model_owners(snapshot: Snapshot) -> dict[str, str]:
    """Every configured model id (and providers' defaults and lists) -> its provider."""
    config = snapshot.config
    owners = {m.id: m.provider for m in config.models.values()}
    for provider in config.llm_providers.values():
        for model_id in (provider.default_model, *provider.models):
            if model_id:
                owners.setdefault(model_id, provider.name)
    return owners


def models_info(snapshot: Snapshot, params: Mapping[str, Any], role: RoleConfig) -> dict[str, Any]:
    """Configured models the role may use, or the one asked for."""
    config = snapshot.config
    wanted = params.get("model")
    models = []
    for model_id, owner in model_owners(snapshot).items():
        if wanted and model_id != wanted:
            continue
        if not (policy.allows(role.models, model_id) and policy.allows(role.providers, owner)):
            continue
        active = owner in snapshot.llm_providers
        models.append(model_entry(model_id, owner, active, config.models.get(model_id)))
    if wanted and not models:
        raise NotFound(f"model {wanted!r} is not configured")
    return {"models": models}
