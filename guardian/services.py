"""Everything a handler may use, built whole before the guardian listens.

There is no half-built guardian: `guardian.main` opens storage, the secret store, limits,
auth and the router first, and only then binds the sockets with a complete `Services`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guardian.auth import Auth
from guardian.calls.router import Router
from guardian.dbquery import QueryRunners
from guardian.ledger import UsageLedger
from guardian.liveconfig import LiveConfig
from guardian.sandboxes import SandboxLinks
from guardian.secretstore import SecretStore
from guardian.storage import Storage
from guardian.tasks import TaskSet


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    live: LiveConfig
    storage: Storage
    store: SecretStore
    auth: Auth
    router: Router
    queries: QueryRunners
    tasks: TaskSet
    ledger: UsageLedger
    sandboxes: SandboxLinks
    #: Which protections are in force (`guardian.protections.report`), for `status`.
    protections: Callable[[], dict[str, Any]]
    started: float = field(default_factory=time.monotonic)

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)
