"""Every RPC method SealGate knows: its name, params Struct, result Struct and surface.

The guardian serves two surfaces. `SANDBOX` is what the internet-facing sandbox may ask on
`guardian.sock`; `ADMIN` is what operators (and the supervisor) may ask on `admin.sock`. A
method listed for neither does not exist. Handlers live in `guardian.dispatch`; this module
only says what a well-formed call looks like, so both processes agree on it. The params of
each method are declared once, as a Struct in `protocol.contract`, and decoded straight into it;
its result once, as a Struct in `protocol.contract_results`, which both processes read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.contract import (
    AuditTailParams,
    ConfigCheckParams,
    CountTokensParams,
    DbQueryParams,
    EmbedParams,
    HelloParams,
    LlmParams,
    LoginParams,
    ModelsInfoParams,
    NoParams,
    OAuthAuthorizeParams,
    OAuthClientsParams,
    OAuthConsentParams,
    OAuthGrantsParams,
    OAuthLoginParams,
    OAuthOwnGrantRevokeParams,
    OAuthOwnGrantsParams,
    OAuthRegisterParams,
    OAuthRevokeParams,
    OAuthTokenParams,
    Params,
    Sealed,
    SearchParams,
    SecretParams,
    SecretsRekeyParams,
    SecretsSetParams,
    SessionsRevokeParams,
    TaskRefParams,
    TokenParams,
    TokensIssueParams,
    TokensListParams,
    UsageMineParams,
    UsageReportParams,
    UserParams,
    UsersAddParams,
    UsersPasswdParams,
    UsersRoleParams,
)
from protocol.contract_results import (
    AuditTailResult,
    ConfigCheckResult,
    ConfigReloadResult,
    ConsentView,
    CountTokensResult,
    DbQueryResult,
    EmbedResult,
    HealthResult,
    HelloResult,
    LlmResult,
    LoginResult,
    ModelsInfoResult,
    OAuthClientsResult,
    OAuthConsentResult,
    OAuthGrantsResult,
    OAuthLoginResult,
    OAuthOwnGrantRevokeResult,
    OAuthOwnGrantsResult,
    OAuthRegisterResult,
    OAuthServerInfoResult,
    OAuthTokenResult,
    Ok,
    ProvidersResult,
    Result,
    SearchResult,
    SecretsHistoryResult,
    SecretsListResult,
    SecretsRekeyResult,
    SecretsSetResult,
    SessionsListResult,
    SessionsRevokeResult,
    StatusResult,
    TaskInfo,
    TokensIssueResult,
    TokensListResult,
    UsageMineResult,
    UsageReportResult,
    UsersAddResult,
    UsersDeleteResult,
    UsersListResult,
    VerifyResult,
)
from protocol.schema import Schema, schema_of


class Surface(enum.Enum):
    SANDBOX = "sandbox"  # guardian.sock: the sandbox uid only
    ADMIN = "admin"  # admin.sock: the guardian's own uid or root


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodSpec:
    name: str
    params: type[Params]
    returns: type[Result]
    surfaces: frozenset[Surface]
    streaming: bool = False
    doc: str = ""

    @property
    def result(self) -> Schema:
        """The result Struct as a `protocol.schema` Schema, for code that checks maps."""
        return schema_of(self.returns)


_BOTH = frozenset({Surface.SANDBOX, Surface.ADMIN})
_ADMIN = frozenset({Surface.ADMIN})
_SANDBOX_ONLY = frozenset({Surface.SANDBOX})

HELLO = MethodSpec(
    name="hello",
    doc="Protocol handshake; the first call on every connection, and only once.",
    params=HelloParams,
    returns=HelloResult,
    surfaces=_BOTH,
)

HEALTH = MethodSpec(
    name="health",
    doc="Liveness and versions; cheap enough to call on every health check.",
    params=NoParams,
    returns=HealthResult,
    surfaces=_BOTH,
)

STATUS = MethodSpec(
    name="status",
    doc="Operator view: versions, uptime, sandbox link, config path and hash, providers.",
    params=NoParams,
    returns=StatusResult,
    surfaces=_ADMIN,
)

LLM_COMPLETE = MethodSpec(
    name="llm.complete",
    doc="One completion through the tool's provider chain; the guardian picks and pays.",
    params=LlmParams,
    returns=LlmResult,
    surfaces=_BOTH,
)

LLM_STREAM = MethodSpec(
    name="llm.stream",
    doc="Like llm.complete, streamed: chunks {'text': delta} as they arrive, then the result"
    " (its text empty: the chunks carried it).",
    params=LlmParams,
    returns=LlmResult,
    surfaces=_BOTH,
    streaming=True,
)

LLM_EMBED = MethodSpec(
    name="llm.embed",
    doc="Embeddings of one text or a list of texts, from the model's provider.",
    params=EmbedParams,
    returns=EmbedResult,
    surfaces=_BOTH,
)

SEARCH_WEB = MethodSpec(
    name="search.web",
    doc="A web search through the search provider chain.",
    params=SearchParams,
    returns=SearchResult,
    surfaces=_BOTH,
)

MODELS_INFO = MethodSpec(
    name="models.info",
    doc="Limits, costs and capabilities of configured models (all, or one).",
    params=ModelsInfoParams,
    returns=ModelsInfoResult,
    surfaces=_BOTH,
)

DB_QUERY = MethodSpec(
    name="db.query",
    doc="A read-only SELECT over the operator's allowlisted PostgreSQL tables.",
    params=DbQueryParams,
    returns=DbQueryResult,
    surfaces=_BOTH,
)

AUTH_LOGIN = MethodSpec(
    name="auth.login",
    doc="Check a user name and password; a new session bound to the caller's IP and UA.",
    params=LoginParams,
    returns=LoginResult,
    surfaces=_BOTH,
)

AUTH_VERIFY = MethodSpec(
    name="auth.verify",
    doc="Who the caller's credential belongs to (or the open-mode principal).",
    params=Sealed,
    returns=VerifyResult,
    surfaces=_BOTH,
)

AUTH_LOGOUT = MethodSpec(
    name="auth.logout",
    doc="End the caller's session.",
    params=Sealed,
    returns=Ok,
    surfaces=_BOTH,
)


def _admin(name: str, doc: str, params: type[Params], returns: type[Result] = Ok) -> MethodSpec:
    return MethodSpec(name=name, doc=doc, params=params, returns=returns, surfaces=_ADMIN)


ADMIN_METHODS = (
    _admin(
        "users.add",
        "Create a user (password optional: token-only users).",
        UsersAddParams,
        UsersAddResult,
    ),
    _admin(
        "users.list",
        "Every user with role and lock state.",
        NoParams,
        UsersListResult,
    ),
    _admin("users.lock", "Lock a user until unlocked.", UserParams),
    _admin("users.unlock", "Unlock a user and clear failed logins.", UserParams),
    _admin(
        "users.delete",
        "Delete a user with their tokens and sessions; says whether auth went off with it.",
        UserParams,
        UsersDeleteResult,
    ),
    _admin(
        "users.passwd",
        "Set a user's password; ends their sessions.",
        UsersPasswdParams,
    ),
    _admin("users.role", "Change a user's role.", UsersRoleParams),
    _admin(
        "tokens.issue",
        "Issue an API token; its value is shown once.",
        TokensIssueParams,
        TokensIssueResult,
    ),
    _admin(
        "tokens.list",
        "API tokens (never their values).",
        TokensListParams,
        TokensListResult,
    ),
    _admin(
        "tokens.revoke",
        "Revoke a token by id or by value.",
        TokenParams,
    ),
    _admin("sessions.list", "Open sessions.", NoParams, SessionsListResult),
    _admin(
        "providers",
        "Every provider: active or not and why, and where each key came from.",
        NoParams,
        ProvidersResult,
    ),
    _admin(
        "audit.tail",
        "Audit entries since a time (or after an id), newest last.",
        AuditTailParams,
        AuditTailResult,
    ),
    _admin(
        "usage.report",
        "Calls, errors, tokens and cost since a time, grouped.",
        UsageReportParams,
        UsageReportResult,
    ),
    _admin(
        "secrets.set",
        "Store a new version of a secret (the value goes in, never out).",
        SecretsSetParams,
        SecretsSetResult,
    ),
    _admin(
        "secrets.list",
        "Secret names with versions, dates and status; never values.",
        NoParams,
        SecretsListResult,
    ),
    _admin(
        "secrets.history",
        "Every version of one secret; never values.",
        SecretParams,
        SecretsHistoryResult,
    ),
    _admin(
        "secrets.delete",
        "Delete a secret (all its versions stop working).",
        SecretParams,
    ),
    _admin(
        "secrets.rekey",
        "Re-encrypt everything under the key in a file the guardian can read.",
        SecretsRekeyParams,
        SecretsRekeyResult,
    ),
    _admin(
        "config.check",
        "Validate .pyfun text against this guardian's secrets; apply nothing.",
        ConfigCheckParams,
        ConfigCheckResult,
    ),
    _admin(
        "config.reload",
        "Re-read .pyfun and secrets; keep the old ones on any error.",
        NoParams,
        ConfigReloadResult,
    ),
    _admin(
        "sessions.revoke",
        "End sessions: all of one user's, or one by id.",
        SessionsRevokeParams,
        SessionsRevokeResult,
    ),
)

# OAuth 2.1 ------------------------------------------------------------------------------
# SealGate as its own authorization server: the sandbox serves the endpoints and pages, the
# guardian decides and stores (clients, codes, consents, tokens). Every OAuth field the
# sandbox forwards is user input, so each is bounded (in `protocol.contract`) and re-checked by
# the guardian. A refusal the client must see in OAuth's shape carries `data["oauth_error"]`
# (RFC 6749 5.2).
OAUTH_SERVER_INFO = MethodSpec(
    name="oauth.server_info",
    doc="The resource identifier, issuer and scopes the metadata documents publish.",
    params=NoParams,
    returns=OAuthServerInfoResult,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_AUTHORIZE = MethodSpec(
    name="oauth.authorize",
    doc="Check an authorization request (client, redirect, PKCE, scope, resource) before"
    " the sign-in page is shown; fetches a client metadata document when needed.",
    params=OAuthAuthorizeParams,
    returns=ConsentView,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_LOGIN = MethodSpec(
    name="oauth.login",
    doc="Sign in on the authorization page. A consent already given for these scopes"
    " answers with the redirect (code issued); otherwise with a consent ticket.",
    params=OAuthLoginParams,
    returns=OAuthLoginResult,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_CONSENT = MethodSpec(
    name="oauth.consent",
    doc="The signed-in person allowed or denied; answers the redirect (code or error).",
    params=OAuthConsentParams,
    returns=OAuthConsentResult,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_TOKEN = MethodSpec(
    name="oauth.token",
    doc="The token endpoint: an authorization code or a refresh token for tokens.",
    params=OAuthTokenParams,
    returns=OAuthTokenResult,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_REGISTER = MethodSpec(
    name="oauth.register",
    doc="Dynamic Client Registration (RFC 7591): a public client, PKCE required.",
    params=OAuthRegisterParams,
    returns=OAuthRegisterResult,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_REVOKE = MethodSpec(
    name="oauth.revoke",
    doc="Token revocation (RFC 7009): an access or refresh token, with its whole family.",
    params=OAuthRevokeParams,
    returns=Ok,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_ADMIN_METHODS = (
    MethodSpec(
        name="oauth.clients",
        doc="OAuth clients (registered and metadata-document ones); revoke one with its tokens.",
        params=OAuthClientsParams,
        returns=OAuthClientsResult,
        surfaces=_ADMIN,
    ),
    MethodSpec(
        name="oauth.grants",
        doc="Consents given (user, client, scopes, live tokens); revoke one user's consent"
        " for one client, with its tokens.",
        params=OAuthGrantsParams,
        returns=OAuthGrantsResult,
        surfaces=_ADMIN,
    ),
)

OAUTH_METHODS: tuple[MethodSpec, ...] = (
    OAUTH_SERVER_INFO,
    OAUTH_AUTHORIZE,
    OAUTH_LOGIN,
    OAUTH_CONSENT,
    OAUTH_TOKEN,
    OAUTH_REGISTER,
    OAUTH_REVOKE,
    *OAUTH_ADMIN_METHODS,
)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        HELLO,
        HEALTH,
        STATUS,
        LLM_COMPLETE,
        LLM_STREAM,
        SEARCH_WEB,
        MODELS_INFO,
        DB_QUERY,
        LLM_EMBED,
        AUTH_LOGIN,
        AUTH_VERIFY,
        AUTH_LOGOUT,
        *ADMIN_METHODS,
        *OAUTH_METHODS,
    )
}


def methods_for(surface: Surface) -> dict[str, MethodSpec]:
    """The methods a connection on `surface` may call."""
    return {name: spec for name, spec in METHODS.items() if surface in spec.surfaces}


# a person's own OAuth grants (the sandbox's grants page) ----------------------------------
# Sandbox surface only. The guardian resolves the caller's credential to its principal and
# lists or withdraws that user's consents alone; no parameter names a user.
OAUTH_OWN_GRANTS = MethodSpec(
    name="oauth.own_grants",
    doc="The caller's own consents: client (name, kind), scopes in words, when granted and"
    " last active; with a single-use form token for withdrawing one.",
    params=OAuthOwnGrantsParams,
    returns=OAuthOwnGrantsResult,
    surfaces=_SANDBOX_ONLY,
)

OAUTH_OWN_GRANT_REVOKE = MethodSpec(
    name="oauth.own_grant_revoke",
    doc="Withdraw the caller's own consent to one client, with every token issued under it.",
    params=OAuthOwnGrantRevokeParams,
    returns=OAuthOwnGrantRevokeResult,
    surfaces=_SANDBOX_ONLY,
)

METHODS.update({spec.name: spec for spec in (OAUTH_OWN_GRANTS, OAUTH_OWN_GRANT_REVOKE)})


# the caller's own usage and budget (issue 28: the MCP resource sealgate://usage/me) ------
# Sandbox surface only: the guardian resolves the credential; no parameter names a user.
USAGE_MINE = MethodSpec(
    name="usage.mine",
    doc="The caller's own usage this month (calls, tokens, cost) and what is left of its"
    " monthly budget.",
    params=UsageMineParams,
    returns=UsageMineResult,
    surfaces=_SANDBOX_ONLY,
)

METHODS[USAGE_MINE.name] = USAGE_MINE


# LLM calls as tasks (issue 28 item 5: the MCP tasks extension) --------------------------
# Sandbox surface only; the guardian resolves the owner from the credential on every call.
TASKS_START = MethodSpec(
    name="tasks.start",
    doc="Start an LLM call as a task of the caller's, kept in the guardian for a day at"
    " most (not over a restart); answers the task's first state.",
    params=LlmParams,
    returns=TaskInfo,
    surfaces=_SANDBOX_ONLY,
)
TASKS_GET = MethodSpec(
    name="tasks.get",
    doc="One of the caller's tasks: its state, and its result once it answered.",
    params=TaskRefParams,
    returns=TaskInfo,
    surfaces=_SANDBOX_ONLY,
)
TASKS_CANCEL = MethodSpec(
    name="tasks.cancel",
    doc="Cancel one of the caller's tasks: its provider call ends, billed as a cancelled"
    " call; answers the task's state once the call has ended.",
    params=TaskRefParams,
    returns=TaskInfo,
    surfaces=_SANDBOX_ONLY,
)

METHODS.update({spec.name: spec for spec in (TASKS_START, TASKS_GET, TASKS_CANCEL)})


# token counts (issue 27: /v1/messages/count_tokens) ---------------------------------------
# Sandbox surface only. Checked like llm.complete (the caller's principal, role and tool);
# the provider key is used in the guardian only, and no spend is recorded.
LLM_COUNT_TOKENS = MethodSpec(
    name="llm.count_tokens",
    doc="A completion request's input tokens: counted by the provider where it speaks"
    " Anthropic's wire format, else SealGate's estimate, marked as one.",
    params=CountTokensParams,
    returns=CountTokensResult,
    surfaces=_SANDBOX_ONLY,
)

METHODS[LLM_COUNT_TOKENS.name] = LLM_COUNT_TOKENS


# the verifiable audit log (guardian/tlog): operators only --------------------------------
from protocol.contract import AuditProveParams, AuditVerifyParams  # noqa: E402
from protocol.contract_results import AuditProofResult, AuditVerifyResult  # noqa: E402

AUDIT_VERIFY = MethodSpec(
    name="audit.verify",
    doc="Check every leaf of the audit log, its rows, and every signed checkpoint (and one"
    " given); names the first bad index.",
    params=AuditVerifyParams,
    returns=AuditVerifyResult,
    surfaces=_ADMIN,
)
AUDIT_PROVE = MethodSpec(
    name="audit.prove",
    doc="An inclusion proof of one leaf (a receipt, an audit entry) in a signed checkpoint.",
    params=AuditProveParams,
    returns=AuditProofResult,
    surfaces=_ADMIN,
)

METHODS.update({spec.name: spec for spec in (AUDIT_VERIFY, AUDIT_PROVE)})

# a caller's own receipts (GET /v1/receipts/ID): sandbox surface, the principal resolved from
# the credential; another caller's receipt is `not_found`, as one that does not exist
from protocol.contract import ReceiptGetParams  # noqa: E402
from protocol.contract_results import ReceiptResult  # noqa: E402

RECEIPTS_GET = MethodSpec(
    name="receipts.get",
    doc="One of the caller's own receipts, re-signed from its ledger row, with its leaf in the"
    " audit log and an inclusion proof once a checkpoint covers it.",
    params=ReceiptGetParams,
    returns=ReceiptResult,
    surfaces=_SANDBOX_ONLY,
)

METHODS.update({RECEIPTS_GET.name: RECEIPTS_GET})

from protocol.contract import AuditConsistencyParams  # noqa: E402
from protocol.contract_results import AuditConsistencyResult  # noqa: E402

AUDIT_CONSISTENCY = MethodSpec(
    name="audit.consistency",
    doc="A consistency proof from an older tree size to the latest signed checkpoint.",
    params=AuditConsistencyParams,
    returns=AuditConsistencyResult,
    surfaces=_ADMIN,
)

METHODS.update({AUDIT_CONSISTENCY.name: AUDIT_CONSISTENCY})


# upstream MCP servers behind the hub (docs/UPSTREAM_MCP.md) -------------------------------
# The sandbox names a configured server and tool, never a URL: the guardian alone is the
# upstream's client, with the credential of its configuration (invariant 3).
from protocol.contract_upstream import (  # noqa: E402
    McpApproveParams,
    McpApproveResult,
    McpCallParams,
    McpCallResult,
    McpDiffResult,
    McpListParams,
    McpListResult,
    McpServerParams,
    McpServersResult,
)

MCP_LIST = MethodSpec(
    name="mcp.list",
    doc="The caller's upstream MCP tools under their prefixed names: those its role and token"
    " may use whose definitions an operator approved (checked against the database).",
    params=McpListParams,
    returns=McpListResult,
    surfaces=_SANDBOX_ONLY,
)
MCP_CALL = MethodSpec(
    name="mcp.call",
    doc="Call one approved tool of a configured upstream MCP server for the caller; the"
    " result is redacted, the call limited, audited and counted like a provider call.",
    params=McpCallParams,
    returns=McpCallResult,
    surfaces=_SANDBOX_ONLY,
)
MCP_SERVERS = _admin(
    "mcp.servers",
    "Every upstream MCP server: state, tools served and waiting, calls.",
    NoParams,
    McpServersResult,
)
MCP_DIFF = _admin(
    "mcp.diff",
    "What changed in a server's tool definitions since they were approved.",
    McpServerParams,
    McpDiffResult,
)
MCP_APPROVE = _admin(
    "mcp.approve",
    "Pin a server's tool definitions as they are now (approve them); with `expect`, only"
    " if they are still what that `mcp.diff` showed.",
    McpApproveParams,
    McpApproveResult,
)

METHODS.update(
    {spec.name: spec for spec in (MCP_LIST, MCP_CALL, MCP_SERVERS, MCP_DIFF, MCP_APPROVE)}
)

# sessions and streams across replicas (issue 29: any replica answers) ---------------------
# Sandbox surface only; each resolves the caller's principal from the credential. A session
# id authorizes nothing: it only lets another replica's sandbox serve a session it did not
# open, and only to the principal it was opened for.
from protocol.contract import (  # noqa: E402
    RelayListenParams,
    RelayPostParams,
    RelaySessionParams,
)
from protocol.contract_results import RelaySessionResult  # noqa: E402

RELAY_SESSION_OPEN = MethodSpec(
    name="relay.session_open",
    doc="A new Streamable HTTP session id, signed for the caller's principal with the"
    " deployment's key (which never leaves the guardian).",
    params=Sealed,
    returns=RelaySessionResult,
    surfaces=_SANDBOX_ONLY,
)
RELAY_SESSION_CHECK = MethodSpec(
    name="relay.session_check",
    doc="Whether a Streamable HTTP session id is the deployment's, unexpired, and the"
    " caller's principal's; `not_found` otherwise, alike for every reason.",
    params=RelaySessionParams,
    returns=Ok,
    surfaces=_SANDBOX_ONLY,
)
RELAY_LISTEN = MethodSpec(
    name="relay.listen",
    doc="Hold a legacy SSE session's stream for the caller's principal: the messages other"
    " replicas relay to it arrive as chunks `{message}` until the call is cancelled.",
    params=RelayListenParams,
    returns=Ok,
    surfaces=_SANDBOX_ONLY,
    streaming=True,
)
RELAY_POST = MethodSpec(
    name="relay.post",
    doc="Relay one message to a legacy SSE session held by any replica on this database, if"
    " it is the caller's principal's; `not_found` otherwise.",
    params=RelayPostParams,
    returns=Ok,
    surfaces=_SANDBOX_ONLY,
)

METHODS.update(
    {
        spec.name: spec
        for spec in (RELAY_SESSION_OPEN, RELAY_SESSION_CHECK, RELAY_LISTEN, RELAY_POST)
    }
)
