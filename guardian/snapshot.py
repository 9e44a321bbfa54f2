"""What is active under one configuration and one set of secrets.

A `Snapshot` is immutable and swapped whole on reload, so a call in flight keeps the
configuration it started with and never sees half of a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from guardian.secrets import Secrets
from protocol.pyfun import ProviderConfig, PyfunConfig, ToolConfig

#: Tools the sandbox serves whatever providers are active.
BUILTIN_TOOLS = ("health_check", "list_active_tools", "get_model_info")


def provider_active(provider: ProviderConfig, secrets: Secrets) -> bool:
    """Active when switched on and either keyless or at least one of its keys is present."""
    if not provider.active:
        return False
    return not provider.requires_key or any(name in secrets for name in provider.env_keys)


def db_query_configured(config: PyfunConfig, secrets: Secrets) -> bool:
    """db_query needs a database to read and at least one allowlisted table."""
    has_database = "DB_QUERY_URL" in secrets or "DATABASE_URL" in secrets
    return has_database and bool(config.db_query.tables)


def chain_of(providers: Mapping[str, ProviderConfig], start: str) -> tuple[str, ...]:
    """The providers a call starting at `start` may reach along `fallback_to` (loops are
    refused when .pyfun is parsed; the `seen` check only keeps this total)."""
    chain: list[str] = []
    current = providers.get(start)
    while current is not None and current.name not in chain:
        chain.append(current.name)
        current = providers.get(current.fallback_to) if current.fallback_to else None
    return tuple(chain)


def tool_usable(tool: ToolConfig, config: PyfunConfig, active: tuple[str, ...]) -> bool:
    """A configured tool is served only when a provider along its own chain is active: one
    whose default provider and every fallback lack a key would only ever answer 503."""
    if not tool.active or not active:
        return False
    if not tool.default_provider:
        return True  # it uses whichever provider is active
    providers = config.llm_providers if tool.provider_type == "llm" else config.search_providers
    return any(name in active for name in chain_of(providers, tool.default_provider))


def known_models(config: PyfunConfig) -> frozenset[str]:
    """Every model id the configuration names: [MODEL.*], defaults and provider lists."""
    known = set(config.models)
    for provider in config.llm_providers.values():
        known.update(provider.models)
        if provider.default_model:
            known.add(provider.default_model)
    return frozenset(known)


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: PyfunConfig
    secrets: Secrets
    llm_providers: tuple[str, ...]
    search_providers: tuple[str, ...]
    tools: tuple[str, ...]
    #: Worked out once per configuration, not per call.
    known_models: frozenset[str]

    @classmethod
    def build(cls, config: PyfunConfig, secrets: Secrets) -> Snapshot:
        llm = tuple(n for n, p in config.llm_providers.items() if provider_active(p, secrets))
        search = tuple(n for n, p in config.search_providers.items() if provider_active(p, secrets))
        tools = list(BUILTIN_TOOLS)
        configured_llm = config.tools.get("llm_complete")  # a block may switch it off
        if llm and (configured_llm is None or configured_llm.active):
            tools.append("llm_complete")
        configured_search = config.tools.get("web_search")
        if search and (configured_search is None or tool_usable(configured_search, config, search)):
            tools.append("web_search")
        if db_query_configured(config, secrets):
            tools.append("db_query")
        for name, tool in config.tools.items():
            usable = {"llm": llm, "search": search}.get(tool.provider_type, ())
            if name not in tools and tool_usable(tool, config, usable):
                tools.append(name)
        return cls(config, secrets, llm, search, tuple(tools), known_models(config))
