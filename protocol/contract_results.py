"""Every RPC method's result, declared once as a msgspec Struct.

The guardian's handlers build these (or their maps are converted into them before they are
sent, `guardian.dispatch`), and the sandbox's stubs decode each answer into the same Struct
(`decode_result`), so both processes read one declaration. Fields are declared in the order
the guardian has always sent them: a result crosses the socket, and reaches HTTP clients,
key for key as before. A field that may be missing is `UNSET` when absent (and omitted again
when encoded). Maps whose keys come from configuration or storage rows stay maps.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from protocol.errors import Internal

logger = logging.getLogger("sealgate.rpc")

Names = Annotated[list[str], Meta(max_length=1024)]
#: A number the guardian may send as an integer or a float; kept as it came.
Number = int | float


class Result(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One method's answer: exactly these fields (both processes ship together)."""


class Ok(Result, frozen=True, kw_only=True):
    ok: bool


class TracingSettings(Result, frozen=True, kw_only=True):
    """Tracing as the sandbox gets it at `hello` (the exporter's settings stay with the
    guardian): on or off, and the client addresses whose `traceparent` is honoured."""

    enabled: bool
    trusted_clients: Names


# the handshake and liveness ----------------------------------------------------------------
class HelloResult(Result, frozen=True, kw_only=True):
    protocol_version: int
    guardian_version: str
    llm_providers: Names
    search_providers: Names
    tools: Names
    #: Whether the sandbox traces (the guardian exports), and whose `traceparent` it takes.
    tracing: TracingSettings | UnsetType = UNSET


class HealthResult(Result, frozen=True, kw_only=True):
    status: str
    version: str
    protocol_version: int
    uptime_s: Number
    python: str
    pid: int
    #: Numbers only (the sandbox exports them on /metrics): usage_ledger_pending,
    #: usage_ledger_capacity, usage_ledger_dropped, task_restarts.
    queues: dict[str, int]


class StatusResult(Result, frozen=True, kw_only=True):
    version: str
    uptime_s: Number
    pid: int
    config_path: str
    config_sha256: str
    sandbox_connections: int
    #: Each sandbox process linked (past its hello): {"pid", "calls"}; several with
    #: HUB_SANDBOX_WORKERS.
    sandboxes: list[dict[str, int]] = []
    llm_providers: Names
    search_providers: Names
    tools: Names
    database: str
    protections: dict[str, Any]
    #: {"tasks": {name: {running, restarts, last_error}}, "usage_ledger": {pending, ...}}
    background: dict[str, Any]


# sealed calls ------------------------------------------------------------------------------
class FallbackStep(Result, frozen=True, kw_only=True):
    """One provider tried (or skipped) before the answer, and why it did not answer."""

    provider: str
    error: str


class Usage(Result, frozen=True, kw_only=True):
    """What was billed; flagged when SealGate counted (`estimated`) or bounded (`clamped`)."""

    input_tokens: int
    output_tokens: int | UnsetType = UNSET  # an embedding has none
    estimated: bool | UnsetType = UNSET
    clamped: bool | UnsetType = UNSET


class LlmResult(Result, frozen=True, kw_only=True):
    """`llm.complete`, and the end of `llm.stream` (its text empty: the chunks carried it)."""

    text: str
    provider: str
    model: str
    fallback_path: list[FallbackStep]
    usage: Usage
    cost_usd: Number | None
    latency_ms: Number
    finish_reason: str
    #: OpenAI's shape: {"id", "type", "function": {"name", "arguments"}}.
    tool_calls: list[dict[str, Any]]
    #: Anthropic's thinking blocks, when the provider is Anthropic and thinking was asked for.
    thinking: list[dict[str, Any]] | UnsetType = UNSET
    #: What the provider was not sent: {"anthropic-beta": [...], "anthropic": [field, ...]}.
    dropped: dict[str, Any] | UnsetType = UNSET
    #: The stop sequence that ended the text, where the provider says which (Anthropic).
    stop_sequence: Annotated[str, Meta(max_length=256)] | UnsetType = UNSET

    #: The call's receipt (docs/AUDIT.md): its id (the ledger row's key, also in a stream's
    #: first chunk) and the signed receipt (with the answer; `GET /v1/receipts/ID` later).
    receipt_id: Annotated[str, Meta(max_length=128)] | UnsetType = UNSET
    receipt: Annotated[str, Meta(max_length=8192)] | UnsetType = UNSET


class EmbedResult(Result, frozen=True, kw_only=True):
    data: list[list[Number]]
    model: str
    provider: str
    usage: Usage
    #: The call's receipt (docs/AUDIT.md), as on `LlmResult`.
    receipt_id: Annotated[str, Meta(max_length=128)] | UnsetType = UNSET
    receipt: Annotated[str, Meta(max_length=8192)] | UnsetType = UNSET


class SearchHit(Result, frozen=True, kw_only=True):
    title: str
    url: str
    snippet: str


class SearchResult(Result, frozen=True, kw_only=True):
    results: list[SearchHit]
    provider: str
    fallback_path: list[FallbackStep]
    latency_ms: Number
    answer: str | UnsetType = UNSET
    #: The call's receipt (docs/AUDIT.md), as on `LlmResult`.
    receipt_id: Annotated[str, Meta(max_length=128)] | UnsetType = UNSET
    receipt: Annotated[str, Meta(max_length=8192)] | UnsetType = UNSET


class ModelsInfoResult(Result, frozen=True, kw_only=True):
    #: {"id", "provider", "provider_active", limits and costs}: `guardian.model_info`.
    models: list[dict[str, Any]]


class DbQueryResult(Result, frozen=True, kw_only=True):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool


class LoginResult(Result, frozen=True, kw_only=True):
    session: str
    principal: str
    expires_at: Number


class VerifyResult(Result, frozen=True, kw_only=True):
    """Who a credential belongs to. `user_id` is '' in open mode; `grant` is a digest of the
    user, the credential, its role and scopes (what cached tool answers are keyed by)."""

    principal: str
    role: str
    kind: str
    admin: bool
    user_id: Annotated[str, Meta(max_length=64)]
    grant: Annotated[str, Meta(max_length=64)]
    tools: Names
    #: An OAuth access token's scopes (absent for other credentials).
    scopes: Annotated[list[str], Meta(max_length=16)] | UnsetType = UNSET
    auth_enabled: bool


# operator commands -------------------------------------------------------------------------
Rows = list[dict[str, Any]]


class UsersAddResult(Result, frozen=True, kw_only=True):
    ok: bool
    auth_switched_on: bool | UnsetType = UNSET


class UsersListResult(Result, frozen=True, kw_only=True):
    users: Rows


class UsersDeleteResult(Result, frozen=True, kw_only=True):
    ok: bool
    auth_switched_off: bool | UnsetType = UNSET
    open_mode: bool | UnsetType = UNSET


class TokensIssueResult(Result, frozen=True, kw_only=True):
    token: str
    id: str
    user: str
    expires_at: Number | None


class TokensListResult(Result, frozen=True, kw_only=True):
    tokens: Rows


class SessionsListResult(Result, frozen=True, kw_only=True):
    sessions: Rows


class ProvidersResult(Result, frozen=True, kw_only=True):
    providers: Rows


class AuditTailResult(Result, frozen=True, kw_only=True):
    entries: Rows


class UsageReportResult(Result, frozen=True, kw_only=True):
    rows: Rows


class SecretsSetResult(Result, frozen=True, kw_only=True):
    version: int


class SecretsListResult(Result, frozen=True, kw_only=True):
    secrets: Rows
    enabled: bool
    why_disabled: str


class SecretsHistoryResult(Result, frozen=True, kw_only=True):
    versions: Rows


class SecretsRekeyResult(Result, frozen=True, kw_only=True):
    count: int


class ConfigCheckResult(Result, frozen=True, kw_only=True):
    ok: bool
    sha256: str
    warnings: list[str]
    translations: list[str]
    tools: Names
    llm_providers: Names
    search_providers: Names


class ConfigReloadResult(Result, frozen=True, kw_only=True):
    ok: bool
    sha256: str
    tools: Names
    llm_providers: Names
    search_providers: Names


class SessionsRevokeResult(Result, frozen=True, kw_only=True):
    revoked: int


# OAuth 2.1 ---------------------------------------------------------------------------------
Url = Annotated[str, Meta(max_length=2048)]
Scopes = Annotated[list[str], Meta(max_length=16)]
ClientName = Annotated[str, Meta(max_length=256)]
Host = Annotated[str, Meta(max_length=512)]
ClientKind = Annotated[str, Meta(max_length=16)]
ScopeWords = Annotated[list[Annotated[str, Meta(max_length=512)]], Meta(max_length=16)]
RedirectTo = Annotated[str, Meta(max_length=8192)]
Ticket = Annotated[str, Meta(max_length=128)]


class OAuthServerInfoResult(Result, frozen=True, kw_only=True):
    resource: Url
    issuer: Url
    scopes_supported: Scopes
    cimd_loopback_allowed: bool


class ConsentView(Result, frozen=True, kw_only=True):
    """What the consent page shows about an authorization request."""

    client_name: ClientName
    client_id: Url
    redirect_host: Host
    scopes: Scopes
    resource: Url
    #: "registered" or "cimd": who named the client (itself; its metadata document)
    client_kind: ClientKind | UnsetType = UNSET
    #: what each scope opens, in words, in the order of `scopes`
    scope_words: ScopeWords | UnsetType = UNSET


class OAuthLoginResult(Result, frozen=True, kw_only=True):
    """Either `redirect_to` (a consent already given: the code is issued), or a `ticket`
    with the consent view for the page that asks."""

    redirect_to: RedirectTo | UnsetType = UNSET
    ticket: Ticket | UnsetType = UNSET
    client_name: ClientName | UnsetType = UNSET
    client_id: Url | UnsetType = UNSET
    redirect_host: Host | UnsetType = UNSET
    scopes: Scopes | UnsetType = UNSET
    resource: Url | UnsetType = UNSET
    client_kind: ClientKind | UnsetType = UNSET
    scope_words: ScopeWords | UnsetType = UNSET

    def consent(self) -> tuple[str, ConsentView]:
        """The ticket and the view of an answer that asks for consent (`Internal` if this
        answer is a redirect, or lacks a required field)."""
        fields = {name: getattr(self, name) for name in ConsentView.__struct_fields__}
        required = ConsentView.__struct_fields__[: -len(ConsentView.__struct_defaults__) or None]
        if not isinstance(self.ticket, str) or any(fields[n] is UNSET for n in required):
            raise Internal("the guardian's oauth.login answer has neither a redirect nor a ticket")
        return self.ticket, ConsentView(**fields)


class OAuthConsentResult(Result, frozen=True, kw_only=True):
    redirect_to: RedirectTo


class OAuthTokenResult(Result, frozen=True, kw_only=True):
    access_token: Annotated[str, Meta(max_length=256)]
    token_type: Annotated[str, Meta(max_length=16)]
    expires_in: int
    refresh_token: Annotated[str, Meta(max_length=256)]
    scope: Annotated[str, Meta(max_length=512)]


class OAuthRegisterResult(Result, frozen=True, kw_only=True):
    #: The registration answer of RFC 7591 section 3.2.1, as the client receives it.
    client: dict[str, Any]


class OAuthClientsResult(Result, frozen=True, kw_only=True):
    clients: Rows
    revoked: int


class OAuthGrantsResult(Result, frozen=True, kw_only=True):
    grants: Rows
    revoked: int


R = TypeVar("R", bound=Result)


def decode_result(kind: type[R], value: Any) -> R:
    """An answer (a decoded map) as `kind`, or `Internal`: an answer outside the contract
    means the two processes disagree, which no caller can fix."""
    if isinstance(value, kind):
        return value
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        logger.error("an answer does not fit %s: %s", kind.__name__, exc)
        raise Internal(f"the guardian's answer does not fit {kind.__name__}: {exc}") from None


def to_wire(value: Result) -> dict[str, Any]:
    """The map that crosses the socket (and that HTTP clients see): the fields in their
    declared order, absent ones left out."""
    wire: dict[str, Any] = msgspec.to_builtins(value)
    return wire


# a person's own OAuth grants (the sandbox's grants page) ----------------------------------
class OwnGrant(Result, frozen=True, kw_only=True):
    """One consent of the caller's: the client (its own name, unverified), scopes in words."""

    client_id: Url
    client_name: ClientName
    client_kind: ClientKind
    scopes: Scopes
    scope_words: ScopeWords
    granted_at: float
    updated_at: float
    last_token_at: float | None
    live_tokens: int


class OAuthOwnGrantsResult(Result, frozen=True, kw_only=True):
    user: Annotated[str, Meta(max_length=64)]
    grants: list[OwnGrant]
    form_token: Annotated[str, Meta(max_length=128)]


class OAuthOwnGrantRevokeResult(Result, frozen=True, kw_only=True):
    revoked: int
    client_name: ClientName


# the caller's own usage and budget (the MCP resource sealgate://usage/me) ---------------
class UsageMineResult(Result, frozen=True, kw_only=True):
    """`usage.mine`: the resolved principal's usage since the month began (UTC), from the
    usage ledger, and its budget as the limits see it (calls in flight held at their
    maximum cost)."""

    principal: str
    role: str
    #: The start of the month counted (epoch seconds, UTC).
    since: Number
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: Number
    #: What the monthly budget counts so far, reservations of calls in flight included.
    spent_usd: Number
    monthly_budget_usd: Number | None
    budget_left_usd: Number | None
    requests_per_min: int | None


# LLM calls as tasks (issue 28 item 5: the MCP tasks extension) --------------------------
class TaskError(Result, frozen=True, kw_only=True):
    """Why a task failed: the typed error the call would have answered."""

    code: str
    message: str
    data: dict[str, Any] | UnsetType = UNSET


class TaskInfo(Result, frozen=True, kw_only=True):
    """`tasks.start`, `tasks.get`, `tasks.cancel`: a task's state; its `result` once it
    answered, its `error` if it failed. Times are epoch seconds."""

    task_id: str
    #: working | completed | failed | cancelled
    status: str
    #: Also says how long the task is kept (a day, and not over a guardian restart).
    status_message: str
    created_at: Number
    updated_at: Number
    ttl_ms: int
    poll_interval_ms: int
    result: LlmResult | UnsetType = UNSET
    error: TaskError | UnsetType = UNSET


# token counts (issue 27: /v1/messages/count_tokens) ------------------------------------------
class CountTokensResult(Result, frozen=True, kw_only=True):
    """`llm.count_tokens`: the provider's own count (Anthropic), or SealGate's estimate
    (`estimated`: one token per byte of the request, plus framing; never below the truth)."""

    input_tokens: Annotated[int, Meta(ge=0)]
    estimated: bool
    provider: str
    model: str


# the verifiable audit log (guardian/tlog) --------------------------------------------------
class AuditVerifyResult(Result, frozen=True, kw_only=True):
    ok: bool
    size: int
    root: Annotated[str, Meta(max_length=64)]
    checked: list[int]  # sizes of the signed checkpoints the tree reproduced
    first_bad_index: int | None
    problem: str


class AuditProofResult(Result, frozen=True, kw_only=True):
    """An RFC 9162 inclusion proof of one leaf in a signed checkpoint (base64 hashes)."""

    index: int
    size: int
    leaf: str
    proof: list[str]
    checkpoint: str
    verifier_key: str


class ReceiptResult(Result, frozen=True, kw_only=True):
    """A receipt signed from its stored ledger row, its leaf in the audit log, and the
    inclusion proof once a signed checkpoint covers that leaf."""

    receipt_id: str
    receipt: str
    verifier_key: str
    leaf_index: int | None
    proof: AuditProofResult | None


class AuditConsistencyResult(Result, frozen=True, kw_only=True):
    """An RFC 9162 consistency proof from a tree of `old_size` to the signed `checkpoint`."""

    old_size: int
    size: int
    proof: list[str]
    checkpoint: str
    verifier_key: str


class RelaySessionResult(Result, frozen=True, kw_only=True):
    """`relay.session_open`: a session id the guardian signed for the caller's principal.
    It authorizes nothing: every sealed call still carries the caller's credential."""

    session_id: str
