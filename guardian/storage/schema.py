"""Migrations, written once for both backends.

`{s}` is the table prefix (`sealgate.` on PostgreSQL, nothing on SQLite, which has no
schemas), `{id}` an auto-increment key and `{real}` a double. Times are epoch seconds.
Append a migration; never edit one that has shipped.
"""

from __future__ import annotations


def _owned_by_id(table: str, name: str = "user_name", time: str = "created_at") -> str:
    """Set a row's `user_id` to the user of its name who existed when the row was written;
    '' when none did (the row belonged to an earlier user of that name, or to no one)."""
    return (
        f"UPDATE {{s}}{table} SET user_id = COALESCE((SELECT u.id FROM {{s}}users u"  # noqa: S608
        f" WHERE u.name = {{s}}{table}.{name} AND u.created_at <= {{s}}{table}.{time}), '')"
    )


MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE IF NOT EXISTS {s}users (name TEXT PRIMARY KEY, password_hash TEXT,"
        " role TEXT NOT NULL, created_at {real} NOT NULL,"
        " failed_logins INTEGER NOT NULL DEFAULT 0, locked_until {real},"
        " locked_by_operator INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS {s}api_tokens (id TEXT PRIMARY KEY,"
        " user_name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,"
        " label TEXT NOT NULL DEFAULT '', created_at {real} NOT NULL, expires_at {real},"
        " revoked_at {real}, last_used_at {real})",
        "CREATE TABLE IF NOT EXISTS {s}sessions (id_hash TEXT PRIMARY KEY,"
        " user_name TEXT NOT NULL, ip TEXT NOT NULL, user_agent TEXT NOT NULL,"
        " created_at {real} NOT NULL, last_seen_at {real} NOT NULL, expires_at {real} NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {s}audit (id {id}, ts {real} NOT NULL,"
        " principal TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL,"
        " ip TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '')",
        "CREATE TABLE IF NOT EXISTS {s}usage (id {id}, ts {real} NOT NULL,"
        " principal TEXT NOT NULL, tool TEXT NOT NULL, provider TEXT NOT NULL,"
        " model TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
        " cost_usd {real}, latency_ms {real} NOT NULL, outcome TEXT NOT NULL,"
        " fallback_path TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS usage_principal_ts ON {s}usage (principal, ts)",
        "CREATE INDEX IF NOT EXISTS audit_ts ON {s}audit (ts)",
        "CREATE TABLE IF NOT EXISTS {s}counters (key TEXT NOT NULL, window_start {real} NOT NULL,"
        " value {real} NOT NULL, PRIMARY KEY (key, window_start))",
    ],
    [
        "ALTER TABLE {s}audit ADD COLUMN tool TEXT NOT NULL DEFAULT ''",
    ],
    [
        "CREATE TABLE IF NOT EXISTS {s}secrets (name TEXT NOT NULL, version INTEGER NOT NULL,"
        " nonce TEXT NOT NULL, ciphertext TEXT NOT NULL, created_at {real} NOT NULL,"
        " updated_at {real} NOT NULL, deleted_at {real}, last_used_at {real},"
        " PRIMARY KEY (name, version))",
    ],
    [
        # idempotency key of a usage row: a batch written twice counts once
        "ALTER TABLE {s}usage ADD COLUMN key TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS usage_key ON {s}usage (key)",
    ],
    [
        # a call's maximum cost, written before the call leaves; deleted in the transaction
        # that writes its usage row, so one left behind is a call that never ended
        "CREATE TABLE IF NOT EXISTS {s}reservations (id TEXT PRIMARY KEY,"
        " principal TEXT NOT NULL, window_start {real} NOT NULL, amount {real} NOT NULL,"
        " created_at {real} NOT NULL, owner TEXT NOT NULL, shared INTEGER NOT NULL,"
        " tool TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL)",
    ],
    [
        # OAuth 2.1 (guardian/oauth): clients, codes, tokens and consents; every code and
        # token stored as a SHA-256 hash. `family` ties an authorization to every token
        # issued from it, so a replayed code or refresh token revokes them all.
        "CREATE TABLE IF NOT EXISTS {s}oauth_clients (client_id TEXT PRIMARY KEY,"
        " kind TEXT NOT NULL, name TEXT NOT NULL, redirect_uris TEXT NOT NULL,"
        " metadata TEXT NOT NULL, created_at {real} NOT NULL, fetched_at {real},"
        " revoked_at {real})",
        "CREATE TABLE IF NOT EXISTS {s}oauth_codes (code_hash TEXT PRIMARY KEY,"
        " family TEXT NOT NULL, client_id TEXT NOT NULL, user_name TEXT NOT NULL,"
        " redirect_uri TEXT NOT NULL, scope TEXT NOT NULL, resource TEXT NOT NULL,"
        " challenge TEXT NOT NULL, created_at {real} NOT NULL, expires_at {real} NOT NULL,"
        " used_at {real})",
        "CREATE TABLE IF NOT EXISTS {s}oauth_tokens (token_hash TEXT PRIMARY KEY,"
        " kind TEXT NOT NULL, family TEXT NOT NULL, client_id TEXT NOT NULL,"
        " user_name TEXT NOT NULL, scope TEXT NOT NULL, resource TEXT NOT NULL,"
        " created_at {real} NOT NULL, expires_at {real} NOT NULL, used_at {real},"
        " revoked_at {real})",
        "CREATE INDEX IF NOT EXISTS oauth_tokens_family ON {s}oauth_tokens (family)",
        "CREATE INDEX IF NOT EXISTS oauth_tokens_grant ON {s}oauth_tokens (user_name, client_id)",
        "CREATE TABLE IF NOT EXISTS {s}oauth_grants (user_name TEXT NOT NULL,"
        " client_id TEXT NOT NULL, scope TEXT NOT NULL, created_at {real} NOT NULL,"
        " updated_at {real} NOT NULL, PRIMARY KEY (user_name, client_id))",
        # between the sign-in and the consent page: any replica may answer the second step
        "CREATE TABLE IF NOT EXISTS {s}oauth_tickets (ticket_hash TEXT PRIMARY KEY,"
        " user_name TEXT NOT NULL, request TEXT NOT NULL, expires_at {real} NOT NULL)",
    ],
    [
        # Usage from providers is untrusted: how a row's figures were obtained. `estimated`:
        # SealGate counted a figure itself (the provider reported none, or not a number, or
        # the call never ended); `clamped`: the provider reported more than the request
        # allows, and the row holds the bound.
        "ALTER TABLE {s}usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE {s}usage ADD COLUMN clamped INTEGER NOT NULL DEFAULT 0",
        # Every call's start is a reservation, budgeted or not: `counted` when its amount is
        # held against a budget; the call's maximum tokens, billed if it never ends.
        "ALTER TABLE {s}reservations ADD COLUMN counted INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE {s}reservations ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE {s}reservations ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0",
    ],
    [
        # Identity by a stable user id (`users.id`), not by name: a new user of a deleted
        # user's name inherits no token, session, grant, counter or cached answer. A row
        # written for a name before the user of that name existed (an earlier person) maps
        # to no one (user_id '') and no longer resolves; its grants and tickets are dropped.
        "ALTER TABLE {s}users ADD COLUMN id TEXT",
        "UPDATE {s}users SET id = {newid} WHERE id IS NULL",
        "CREATE UNIQUE INDEX IF NOT EXISTS users_id ON {s}users (id)",
        "ALTER TABLE {s}api_tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("api_tokens"),
        "ALTER TABLE {s}sessions ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("sessions"),
        "ALTER TABLE {s}oauth_codes ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("oauth_codes"),
        "ALTER TABLE {s}oauth_tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("oauth_tokens"),
        "CREATE INDEX IF NOT EXISTS oauth_tokens_user ON {s}oauth_tokens (user_id)",
        "ALTER TABLE {s}oauth_grants ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("oauth_grants"),
        "DELETE FROM {s}oauth_grants WHERE user_id = ''",
        "CREATE UNIQUE INDEX IF NOT EXISTS oauth_grants_user"
        " ON {s}oauth_grants (user_id, client_id)",
        "DELETE FROM {s}oauth_tickets",
        "ALTER TABLE {s}oauth_tickets ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        # the ledger and the audit keep the name for display and add the id
        "ALTER TABLE {s}usage ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("usage", name="principal", time="ts"),
        "CREATE INDEX IF NOT EXISTS usage_user_ts ON {s}usage (user_id, ts)",
        "ALTER TABLE {s}audit ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE {s}reservations ADD COLUMN user_id TEXT NOT NULL DEFAULT ''",
        _owned_by_id("reservations", name="principal"),
        # budget counters (shared ones, on PostgreSQL) move from the name to the id
        "UPDATE {s}counters SET key = 'spend:' || (SELECT u.id FROM {s}users u"
        " WHERE 'spend:' || u.name = {s}counters.key)"
        " WHERE key IN (SELECT 'spend:' || u.name FROM {s}users u)",
    ],
    [
        # The verifiable audit log (guardian/storage/tlog.py): one leaf per audit entry and
        # per ledger row from here on, an RFC 9162 Merkle tree; the head row holds its size
        # and frontier and is locked by every append, so appends serialize across replicas.
        "CREATE TABLE IF NOT EXISTS {s}tlog (idx BIGINT PRIMARY KEY, ts {real} NOT NULL,"
        " kind TEXT NOT NULL, ref TEXT NOT NULL, leaf TEXT NOT NULL, hash TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS tlog_ref ON {s}tlog (kind, ref)",
        "CREATE TABLE IF NOT EXISTS {s}tlog_head (id INTEGER PRIMARY KEY,"
        " size BIGINT NOT NULL, frontier TEXT NOT NULL)",
        "INSERT INTO {s}tlog_head (id, size, frontier) VALUES (1, 0, '[]')",
        # a ledger row's request digest (SHA-256 of the sealed request, never its text): the
        # receipt a caller gets is signed over it, and re-signed from the row on request
        "ALTER TABLE {s}usage ADD COLUMN request_digest TEXT NOT NULL DEFAULT ''",
    ],
    [
        # LLM calls run as tasks (guardian/call_tasks.py): the state of each, so any guardian
        # on this database answers for it. The call runs in the guardian named by `replica`;
        # another guardian asking to cancel it sets `cancel_requested`, which that one polls.
        # `result` and `error` hold the typed LlmResult or TaskError as JSON.
        "CREATE TABLE IF NOT EXISTS {s}call_tasks (id TEXT PRIMARY KEY,"
        " owner TEXT NOT NULL, replica TEXT NOT NULL, status TEXT NOT NULL,"
        " status_message TEXT NOT NULL, result TEXT, error TEXT,"
        " cancel_requested INTEGER NOT NULL DEFAULT 0, created_at {real} NOT NULL,"
        " updated_at {real} NOT NULL, expires_at {real} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS call_tasks_owner ON {s}call_tasks (owner, expires_at)",
        "CREATE INDEX IF NOT EXISTS call_tasks_replica ON {s}call_tasks (replica, status)",
        "CREATE INDEX IF NOT EXISTS call_tasks_expires ON {s}call_tasks (expires_at)",
    ],
    [
        # upstream MCP servers' approved tool definitions (guardian/upstream/pins.py): the
        # SHA-256 of each tool's name, title, description and schemas, and the definition
        # itself (JSON) for `mcp diff`. A tool is served only while its digest matches.
        "CREATE TABLE IF NOT EXISTS {s}mcp_pins (server TEXT NOT NULL, tool TEXT NOT NULL,"
        " digest TEXT NOT NULL, definition TEXT NOT NULL, approved_by TEXT NOT NULL,"
        " approved_at {real} NOT NULL, PRIMARY KEY (server, tool))",
    ],
    [
        # any replica answers (guardian/relay.py): the deployment's keys (the Streamable HTTP
        # session-id key), the legacy SSE streams each guardian's sandbox holds, and the
        # messages relayed to them from other replicas (taken within a second, swept after 60)
        "CREATE TABLE IF NOT EXISTS {s}deployment_keys (name TEXT PRIMARY KEY,"
        " value TEXT NOT NULL, created_at {real} NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {s}relay_sessions (id TEXT PRIMARY KEY,"
        " owner TEXT NOT NULL, replica TEXT NOT NULL, created_at {real} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS relay_sessions_replica ON {s}relay_sessions (replica)",
        "CREATE TABLE IF NOT EXISTS {s}relay_messages (id {id}, session_id TEXT NOT NULL,"
        " body TEXT NOT NULL, created_at {real} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS relay_messages_session ON {s}relay_messages (session_id)",
    ],
]

SQLITE_TYPES = {
    "s": "",
    "id": "INTEGER PRIMARY KEY",
    "real": "REAL",
    # a new random user id, as `guardian.storage.base.new_user_id` makes them
    "newid": "'u_' || lower(hex(randomblob(16)))",
}
POSTGRES_TYPES = {
    "s": "sealgate.",
    "id": "BIGSERIAL PRIMARY KEY",
    "real": "DOUBLE PRECISION",
    "newid": "'u_' || replace(gen_random_uuid()::text, '-', '')",
}
