"""The guardian's view of the world: configuration, secrets and what is active.

A `Snapshot` is immutable and swapped whole on reload, so a call in flight keeps the
configuration it started with and never sees half of a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.redact import Redactor
from guardian.secrets import Secrets
from protocol.pyfun import ProviderConfig, PyfunConfig

if TYPE_CHECKING:
    from guardian.auth import Auth
    from guardian.dbquery import QueryRunners
    from guardian.router import Router
    from guardian.secretstore import SecretStore
    from guardian.storage import Storage

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
    return has_database and bool(config.db_query.get("tables", "").strip())


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: PyfunConfig
    secrets: Secrets
    llm_providers: tuple[str, ...]
    search_providers: tuple[str, ...]
    tools: tuple[str, ...]

    @classmethod
    def build(cls, config: PyfunConfig, secrets: Secrets) -> Snapshot:
        llm = tuple(n for n, p in config.llm_providers.items() if provider_active(p, secrets))
        search = tuple(n for n, p in config.search_providers.items() if provider_active(p, secrets))
        tools = list(BUILTIN_TOOLS)
        if llm:
            tools.append("llm_complete")
        if search:
            tools.append("web_search")
        if db_query_configured(config, secrets):
            tools.append("db_query")
        for name, tool in config.tools.items():
            usable = {"llm": llm, "search": search}.get(tool.provider_type, ())
            if tool.active and usable and name not in tools:
                tools.append(name)
        return cls(config, secrets, llm, search, tuple(tools))


@dataclass(slots=True)
class GuardianState:
    config_path: Path
    snapshot: Snapshot
    redactor: Redactor
    database: str
    started: float = field(default_factory=time.monotonic)
    sandbox_connections: int = 0
    router: Router | None = None
    queries: QueryRunners | None = None
    #: Re-read .pyfun and secrets and swap them in; raises PyfunError and keeps the old.
    reload: Callable[[], dict[str, Any]] | None = None
    #: Rebuild the snapshot after the secret store changed.
    refresh_secrets: Callable[[], None] | None = None
    store: SecretStore | None = None
    auth: Auth | None = None
    storage: Storage | None = None

    def swap(self, snapshot: Snapshot) -> None:
        self.redactor.update(snapshot.secrets.values_to_redact())
        self.snapshot = snapshot

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)
