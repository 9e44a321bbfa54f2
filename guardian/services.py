"""Everything a handler may use, built whole before the guardian listens.

There is no half-built guardian: `guardian.main` opens storage, the secret store, limits,
the identity services and the router first, and only then binds the sockets with a complete
`Services`. Every service is listed here directly, so a handler never reaches one service
through another (`services.oauth`, never `services.auth.oauth`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guardian.call_tasks import CallTasks
from guardian.calls.router import Router
from guardian.dbquery import QueryRunners
from guardian.identity.accounts import Accounts
from guardian.identity.credentials import Credentials
from guardian.identity.sessions import Sessions
from guardian.identity.tokens import Tokens
from guardian.ledger import UsageLedger
from guardian.limits import Limits
from guardian.liveconfig import LiveConfig
from guardian.oauth.service import OAuthService
from guardian.relay import Relay
from guardian.sandboxes import SandboxLinks
from guardian.secretstore import SecretStore
from guardian.storage import Storage
from guardian.tasks import TaskSet
from guardian.tlog.checkpoints import Checkpointer
from guardian.upstream.service import UpstreamService


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    live: LiveConfig
    storage: Storage
    store: SecretStore
    limits: Limits
    #: identity: users and open mode, sessions, API tokens, the OAuth server, and the
    #: resolution of a sealed call's credential across them
    accounts: Accounts
    sessions: Sessions
    tokens: Tokens
    oauth: OAuthService
    credentials: Credentials
    router: Router
    queries: QueryRunners
    tasks: TaskSet
    ledger: UsageLedger
    #: the audit log's signer: signed checkpoints, exported outside the database
    checkpoints: Checkpointer
    sandboxes: SandboxLinks
    #: Which protections are in force (`guardian.protections.report`), for `status`.
    protections: Callable[[], dict[str, Any]]
    #: LLM calls run as tasks (the MCP tasks extension), each its owner's; their state in
    #: the database, so any replica answers for them.
    call_tasks: CallTasks
    #: Upstream MCP servers behind the hub: the guardian is their only client.
    upstreams: UpstreamService
    #: any replica answers: session ids any guardian checks, legacy SSE messages relayed
    relay: Relay
    started: float = field(default_factory=time.monotonic)

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started, 3)
