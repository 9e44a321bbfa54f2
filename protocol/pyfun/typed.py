"""The typed configuration a `.pyfun` file becomes: frozen dataclasses, the limits and
names they are checked against, and the one error a file can raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol.errors import SealGateError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_TIMEOUT_SEC = 60.0
DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
DEFAULT_QUERY_MAX_ROWS = 100
HARD_QUERY_MAX_ROWS = 10_000
DEFAULT_QUERY_TIMEOUT_MS = 5000
#: Bytes of rows in one db_query answer, well under the RPC frame.
DEFAULT_QUERY_MAX_RESULT_BYTES = 1024 * 1024
HARD_QUERY_MAX_RESULT_BYTES = 4 * 1024 * 1024
#: Schemas `[DB_QUERY] tables` may never name (the guardian's own, PostgreSQL's catalogs);
#: the same set as `protocol.readonly_sql.NEVER_SCHEMAS`, which a test keeps in step.
RESERVED_QUERY_SCHEMAS = frozenset({"sealgate", "pg_catalog", "information_schema", "pg_toast"})

API_KINDS = frozenset({"anthropic", "gemini", "openai"})
SEARCH_KINDS = frozenset({"brave", "tavily"})
TOOL_KINDS = frozenset({"llm", "search", "db"})

#: Endpoints of providers SealGate knows by name; a block may leave `base_url` out for them.
KNOWN_BASE_URLS = {
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "openrouter": "https://openrouter.ai/api/v1",
    "huggingface": "https://router.huggingface.co/v1",
    "openai": "https://api.openai.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "xai": "https://api.x.ai/v1",
    "brave": "https://api.search.brave.com/res/v1/web/search",
    "tavily": "https://api.tavily.com/search",
}

#: Endpoints their providers retired, with the one to use now (a `base_url` there warns and
#: is replaced, so an original hub's file keeps working).
RETIRED_HOSTS = {"api-inference.huggingface.co": "https://router.huggingface.co/v1"}

GROUPS = frozenset(
    {"PROVIDERS", "LLM_PROVIDERS", "SEARCH_PROVIDERS", "MODELS", "TOOLS", "ROLES", "MCP_SERVERS"}
)
PLAIN_SECTIONS = frozenset({"HUB", "HUB_LIMITS", "DB_SYNC", "DB_QUERY", "DEBUG"})
#: The original hub's sections SealGate has no use for: skipped whole (blocks and all) up to
#: their END, with one warning per kind.
UNUSED_ORIGINAL_SECTIONS = {
    "WEB_PROVIDERS": "SealGate fetches no web pages for tools",
    "WEB_PROVIDER": "SealGate fetches no web pages for tools",
    "PARSER_PROVIDER": "SealGate parses no documents",
    "PARSER_PROVIDERS": "SealGate parses no documents",
    "FALLBACK": "fallback is set per provider with fallback_to",
}
BLOCK_KINDS = frozenset({"LLM_PROVIDER", "SEARCH_PROVIDER", "MODEL", "TOOL", "ROLE", "MCP_SERVER"})
#: How the guardian reaches an upstream MCP server (`[MCP_SERVER.name]`).
MCP_TRANSPORTS = frozenset({"http", "sse", "stdio"})
#: How an upstream's credential travels: `Authorization: Bearer KEY`, or KEY as the value
#: of the header `auth_header` names.
MCP_AUTH_KINDS = frozenset({"bearer", "header"})
#: SealGate's OAuth scopes (`guardian.oauth.scopes.SCOPES`, which a test keeps in step): an
#: upstream block's `scopes` name the ones a token needs to use its tools.
OAUTH_SCOPES = frozenset({"mcp", "llm", "search", "db_query", "admin"})
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})


class PyfunError(SealGateError):
    """The configuration cannot be used; the message starts with `file:line:`."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    name: str = "SealGate"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    transport: str = "http"
    auth: str = "auto"  # auto: on when a user exists; required: always on
    log_level: str = "info"
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    #: Client addresses (CIDRs) whose W3C `traceparent` the sandbox honours (none: every
    #: request starts a trace of its own).
    trace_trusted_clients: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    master_key_file: str = ""
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 75.0
    max_streams_per_principal: int = 64
    db_connect_wait_s: float = 30.0  # how long the guardian retries an unreachable database
    #: The public address of this hub (the original's HUB_SPACE_URL); OpenRouter's
    #: HTTP-Referer attribution header.
    space_url: str = ""
    #: The hub's public base URL (https://hub.example.org): the OAuth resource and issuer.
    public_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HubLimitsConfig:
    """`[HUB_LIMITS]`: logins and sessions (the guardian enforces them)."""

    max_failed_logins: int = 5
    login_attempts_per_min: int = 20  # per client IP, whatever the user name
    lockout_minutes: float = 15.0
    session_idle_minutes: float = 12 * 60.0
    session_max_hours: float = 7 * 24.0
    #: Provider calls (the original hub's keys). Concurrent requests per provider (None: no
    #: cap); retries of the same provider before the fallback chain moves on, and the pause
    #: between them (a longer Retry-After wins); the time a call may take when neither its
    #: tool nor its provider sets timeout_sec.
    max_parallel_requests: int | None = None
    retry_count: int = 0
    retry_delay_sec: float = 1.0
    request_timeout_sec: float | None = None
    search_timeout_sec: float | None = None
    #: Connections the sandbox's uid may hold open on guardian.sock at once: a sandbox holds
    #: one per worker process, and one more while it reconnects; beyond this a connection
    #: is refused and a security event logged (each costs the guardian memory).
    max_sandbox_connections: int = 16
    #: The audit log (docs/AUDIT.md): a signed checkpoint every `audit_checkpoint_sec`
    #: seconds, or once `audit_checkpoint_leaves` leaves were added; exported to
    #: `audit_export_dir` (default: `audit/` in the guardian's data directory) under the
    #: log's name `audit_origin` (default `sealgate/audit`), which is also the key's name.
    audit_checkpoint_sec: float = 60.0
    audit_checkpoint_leaves: int = 1000
    audit_export_dir: str = ""
    audit_origin: str = "sealgate/audit"
    #: Sign a receipt for every sealed LLM call's answer (`SealGate-Receipt`).
    audit_receipts: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class DbSyncConfig:
    """`[DB_SYNC]`: the sandbox's hub state."""

    tool_cache_ttl_sec: float = 3600.0
    #: Most cached tool answers kept (the original's MAX_CACHE_ENTRIES); 0: no cap.
    max_cache_entries: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DebugConfig:
    """`[DEBUG]`: what provider calls log. Metadata only (tool, provider, model, sizes,
    tokens, status), never prompts, answers or keys."""

    log_requests: bool = False
    log_responses: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DbQueryConfig:
    """`[DB_QUERY]`: what `db_query` may read."""

    tables: tuple[str, ...] = ()  # schema.table, lower-case (a bare name means public.)
    functions: tuple[str, ...] = ()  # added to the built-in allowlist
    max_rows: int = DEFAULT_QUERY_MAX_ROWS
    statement_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS
    max_result_bytes: int = DEFAULT_QUERY_MAX_RESULT_BYTES


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """An LLM or search provider block. Everything here is guardian policy."""

    name: str
    kind: str  # "llm" or "search"
    api: str  # anthropic | gemini | openai for LLMs; brave | tavily for search
    base_url: str
    env_keys: tuple[str, ...]
    requires_key: bool = True
    active: bool = True
    default_model: str = ""
    models: tuple[str, ...] = ()
    fallback_to: str = ""
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    allow_insecure: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    #: Anthropic's `anthropic-version` header ("" = the adapter's default).
    api_version_header: str = ""
    #: Anthropic: the `anthropic-beta` values the guardian may send when a client asks for
    #: them (none by default); any other value a client sends is dropped and reported.
    anthropic_beta: tuple[str, ...] = ()
    #: Search: results when the caller asks for no number, and the most a caller gets.
    default_results: int | None = None
    max_results: int | None = None
    #: Tavily: ask for its generated answer beside the results.
    include_answer: bool = True
    line: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    id: str
    provider: str = ""
    max_output_tokens: int | None = None
    requests_per_min: int | None = None
    requests_per_day: int | None = None
    cost_input_per_1m: float | None = None
    cost_output_per_1m: float | None = None
    context_window: int | None = None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolConfig:
    name: str
    provider_type: str  # llm | search | db
    description: str = ""
    default_provider: str = ""
    system_prompt: str = ""
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    max_tokens: int | None = None
    temperature: float | None = None
    active: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleConfig:
    name: str
    tools: tuple[str, ...] = ("*",)
    providers: tuple[str, ...] = ("*",)
    models: tuple[str, ...] = ("*",)
    requests_per_min: int | None = None
    monthly_budget_usd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class McpServerConfig:
    """`[MCP_SERVER.name]`: an upstream MCP server the guardian alone talks to. The URL,
    command and credential are guardian policy: no RPC method takes any of them."""

    name: str
    transport: str  # http | sse | stdio
    url: str = ""
    #: stdio: the program and its arguments (no shell).
    command: tuple[str, ...] = ()
    #: The variable holding the credential (the guardian's secrets): sent as a header for
    #: http/sse; put in the program's environment under the same name for stdio.
    env_key: str = ""
    auth: str = "bearer"
    auth_header: str = "Authorization"
    #: stdio: more variables (names) from the guardian's secrets the program gets; it gets
    #: nothing else of the guardian's environment.
    env: tuple[str, ...] = ()
    #: stdio: what the program may read (besides system libraries and the Python install),
    #: write (besides /dev/null) and connect to (TCP ports), under Landlock.
    read_paths: tuple[str, ...] = ()
    write_paths: tuple[str, ...] = ()
    connect_ports: tuple[int, ...] = ()
    allow_insecure: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    #: Upstream tool names served (empty: all but `deny_tools`).
    allow_tools: tuple[str, ...] = ()
    deny_tools: tuple[str, ...] = ()
    #: What its tools are called here: prefix + the upstream's name.
    prefix: str = ""
    roles: tuple[str, ...] = ("*",)
    #: OAuth scopes a token needs (all of them) to use this server's tools.
    scopes: tuple[str, ...] = ("mcp",)
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    connect_timeout_sec: float = 10.0
    #: Development only: approve every tool definition as seen (refused unless open mode on
    #: loopback; warned at every start).
    auto_approve: bool = False
    active: bool = True
    line: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PyfunConfig:
    source: str
    sha256: str
    hub: HubConfig = field(default_factory=HubConfig)
    llm_providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    search_providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    tools: Mapping[str, ToolConfig] = field(default_factory=dict)
    roles: Mapping[str, RoleConfig] = field(default_factory=dict)
    mcp_servers: Mapping[str, McpServerConfig] = field(default_factory=dict)
    hub_limits: HubLimitsConfig = field(default_factory=HubLimitsConfig)
    db_sync: DbSyncConfig = field(default_factory=DbSyncConfig)
    db_query: DbQueryConfig = field(default_factory=DbQueryConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    warnings: tuple[str, ...] = ()
    #: How the original hub's spellings were read (`file:line: KEY -> key ...`), for
    #: `config check`.
    translations: tuple[str, ...] = ()

    def provider(self, name: str) -> ProviderConfig | None:
        return self.llm_providers.get(name) or self.search_providers.get(name)
