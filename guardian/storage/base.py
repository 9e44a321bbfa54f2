"""What the guardian stores: one `Storage`, assembled from one repository per job.

    database.py  the primitives (statements, transactions, migrations) and the errors
    users.py     users, API tokens and sessions
    audit.py     the audit log
    ledger.py    usage rows, reservations, spend and reports
    secrets.py   the secret store's ciphertexts
    counters.py  shared counters (rate limits and budgets across replicas)
    tlog.py      the audit log's Merkle tree: a leaf per audit entry and per ledger row
    call_tasks.py  LLM calls run as tasks: each task's state, read by any replica
    mcp_pins.py  upstream MCP tools' approved definitions, read on every listing
    relay.py     the session-id key and legacy SSE messages relayed between replicas

OAuth's tables have their repository beside the service that uses them
(`guardian/oauth/store.py`). Each repository is written against `Database` only; a backend
(`sqlite.py`, `postgres.py`) subclasses `Storage` and provides the primitives, so every
repository runs on both. The names below are re-exported: callers import them from here.
"""

from __future__ import annotations

from guardian.storage.audit import AuditEntry, AuditRepository
from guardian.storage.call_tasks import CallTaskRepository
from guardian.storage.counters import CounterRepository
from guardian.storage.database import (
    Database,
    Row,
    StorageError,
    StorageRefused,
    StorageUnreachable,
    Transaction,
)
from guardian.storage.ledger import (
    LedgerEntry,
    LedgerRepository,
    Reservation,
    UsageRow,
    new_usage_key,
    reservation_values,
)
from guardian.storage.mcp_pins import McpPinRepository
from guardian.storage.relay import RelayRepository
from guardian.storage.secrets import SecretRepository
from guardian.storage.tlog import TlogRepository
from guardian.storage.usage_reports import USAGE_GROUPS, UsageReportRepository
from guardian.storage.users import UserRepository, new_user_id

__all__ = [
    "USAGE_GROUPS",
    "AuditEntry",
    "Database",
    "LedgerEntry",
    "Reservation",
    "Row",
    "Storage",
    "StorageError",
    "StorageRefused",
    "StorageUnreachable",
    "Transaction",
    "UsageRow",
    "new_usage_key",
    "new_user_id",
    "reservation_values",
]


class Storage(
    UserRepository,
    AuditRepository,
    LedgerRepository,
    UsageReportRepository,
    SecretRepository,
    CounterRepository,
    TlogRepository,
    CallTaskRepository,
    McpPinRepository,
    RelayRepository,
):
    """The guardian's tables, one handle for every repository. Subclasses provide the
    connection and the dialect."""
