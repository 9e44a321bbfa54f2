"""Pass 2 of `.pyfun`: each section read into its typed configuration, checking types,
SQL names and addresses (URLs and headers in `urls`)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from protocol.pyfun.lexing import KEY
from protocol.pyfun.original import (
    HUB_IGNORED,
    api_version_header,
    cost_per_1m,
    hub_space_url,
    hub_transport,
)
from protocol.pyfun.reader import Reader
from protocol.pyfun.typed import (
    API_KINDS,
    DEFAULT_HOST,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_PORT,
    DEFAULT_QUERY_MAX_RESULT_BYTES,
    DEFAULT_QUERY_MAX_ROWS,
    DEFAULT_QUERY_TIMEOUT_MS,
    DEFAULT_TIMEOUT_SEC,
    HARD_QUERY_MAX_RESULT_BYTES,
    HARD_QUERY_MAX_ROWS,
    LOG_LEVELS,
    RESERVED_QUERY_SCHEMAS,
    SEARCH_KINDS,
    TOOL_KINDS,
    DbQueryConfig,
    DbSyncConfig,
    DebugConfig,
    HubConfig,
    HubLimitsConfig,
    ModelConfig,
    ProviderConfig,
    RoleConfig,
    ToolConfig,
)
from protocol.pyfun.urls import check_url, provider_base_url, provider_headers

_BETA = re.compile(r"^[a-z0-9][a-z0-9.-]{0,99}$")
_SQL_NAME = re.compile(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$")


def read_provider(reader: Reader, kind: str, limits: HubLimitsConfig) -> ProviderConfig:
    name = reader.section.name
    if kind == "llm":
        inferred = {"anthropic": "anthropic", "gemini": "gemini", "google": "gemini"}.get(
            name, "openai"
        )
        api = reader.choice("api", API_KINDS, inferred)
    else:
        api = reader.choice("api", SEARCH_KINDS, name if name in SEARCH_KINDS else "")
        if not api:
            raise reader.error("api", f'search provider {name!r} needs api = "brave" or "tavily"')
    base_url = provider_base_url(reader, name)
    if not base_url:
        raise reader.error("base_url", f"provider {name!r} needs a base_url")
    allow_insecure = reader.boolean("allow_insecure", False)
    check_url(reader, base_url, allow_insecure)
    requires_key = reader.boolean("requires_key", True)
    env_keys = reader.names("env_key")
    for env_key in env_keys:
        if not KEY.match(env_key):
            raise reader.error("env_key", f"env_key {env_key!r} is not a variable name")
    if requires_key and not env_keys:
        raise reader.error(
            "env_key", f'provider {name!r} needs env_key (or requires_key = "false")'
        )
    default_timeout = (
        limits.request_timeout_sec if kind == "llm" else limits.search_timeout_sec
    ) or DEFAULT_TIMEOUT_SEC
    return ProviderConfig(
        name=name,
        kind=kind,
        api=api,
        base_url=base_url,
        env_keys=env_keys,
        requires_key=requires_key,
        active=reader.boolean("active", True),
        default_model=reader.string("default_model"),
        models=reader.names("models"),
        fallback_to=reader.string("fallback_to"),
        timeout_sec=_number(reader, "timeout_sec", default_timeout, 0.1, 3600),
        allow_insecure=allow_insecure,
        headers=provider_headers(reader),
        api_version_header=api_version_header(reader, api),
        anthropic_beta=_anthropic_beta(reader, api),
        default_results=_search_only(reader, api, "default_results"),
        max_results=_search_only(reader, api, "max_results"),
        include_answer=_include_answer(reader, api),
        line=reader.section.line,
    )


def _search_only(reader: Reader, api: str, key: str) -> int | None:
    if api in SEARCH_KINDS:
        return reader.integer(key, None, low=1, high=100)
    reader.ignore(key, "it applies to search providers only")
    return None


def _anthropic_beta(reader: Reader, api: str) -> tuple[str, ...]:
    if api != "anthropic":
        reader.ignore("anthropic_beta", "only Anthropic's API takes anthropic-beta values")
        return ()
    betas = reader.names("anthropic_beta")
    for beta in betas:
        if not _BETA.match(beta):
            raise reader.error("anthropic_beta", f"anthropic_beta {beta!r} is not a beta name")
    return betas


def _include_answer(reader: Reader, api: str) -> bool:
    if api == "tavily":
        return reader.boolean("include_answer", True)
    reader.ignore("include_answer", "only Tavily generates an answer")
    return True


def read_model(reader: Reader) -> ModelConfig | None:
    per_1k = [k for k in ("cost_input_per_1k", "cost_output_per_1k") if reader.has(k)]
    per_1m = [k for k in ("cost_input_per_1m", "cost_output_per_1m") if reader.has(k)]
    if per_1k and per_1m:
        first, second = sorted((per_1k[0], per_1m[0]), key=lambda k: reader.section.values[k].line)
        raise reader.error(
            second,
            f"{second} contradicts {first} ({reader.where(first)}): give costs per 1k or per 1m"
            " tokens, not both",
        )
    if reader.has("context_tokens") and reader.has("context_window"):
        raise reader.error(
            "context_window",
            f"context_window and context_tokens ({reader.where('context_tokens')}) say the same"
            " thing: keep one",
        )
    context = reader.integer("context_window", None, low=1, high=100_000_000)
    if context is None:
        context = reader.integer("context_tokens", None, low=1, high=100_000_000)
        if context is not None:
            reader.translate("context_tokens", "read as context_window")
    config = ModelConfig(
        id=reader.section.name,
        provider=reader.string("provider"),
        max_output_tokens=reader.integer("max_output_tokens", None, low=1, high=10_000_000),
        requests_per_min=reader.integer("requests_per_min", None, low=1, high=10_000_000),
        requests_per_day=reader.integer("requests_per_day", None, low=1, high=10_000_000_000),
        cost_input_per_1m=cost_per_1m(reader, "input"),
        cost_output_per_1m=cost_per_1m(reader, "output"),
        context_window=context,
        capabilities=reader.names("capabilities"),
    )
    return config if reader.boolean("active", True) else None


def read_tool(reader: Reader, limits: HubLimitsConfig) -> ToolConfig:
    provider_type = reader.choice("provider_type", TOOL_KINDS, "llm")
    if reader.has("readonly"):
        readonly = reader.boolean("readonly", True)
        if provider_type != "db":
            reader.warn("readonly", "only database tools read")
        elif readonly:
            reader.translate("readonly", "db_query is read-only by construction anyway")
        else:
            reader.warn("readonly", "db_query is read-only by construction; it never writes")
    default_timeout = {
        "llm": limits.request_timeout_sec,
        "search": limits.search_timeout_sec,
    }.get(provider_type) or DEFAULT_TIMEOUT_SEC
    return ToolConfig(
        name=reader.section.name,
        provider_type=provider_type,
        description=reader.raw("description").strip(),
        default_provider=reader.string("default_provider"),
        system_prompt=reader.raw("system_prompt"),
        timeout_sec=_number(reader, "timeout_sec", default_timeout, 0.1, 3600),
        max_tokens=reader.integer("max_tokens", None, low=1, high=10_000_000),
        temperature=reader.number("temperature", None, low=0.0, high=2.0),
        active=reader.boolean("active", True),
    )


def read_role(reader: Reader) -> RoleConfig:
    return RoleConfig(
        name=reader.section.name,
        tools=reader.names("tools", ("*",)),
        providers=reader.names("providers", ("*",)),
        models=reader.names("models", ("*",)),
        requests_per_min=reader.integer("requests_per_min", None, low=1, high=10_000_000),
        monthly_budget_usd=reader.number("monthly_budget_usd", None),
    )


def read_hub(reader: Reader, log_level: str) -> HubConfig:
    for key, why in HUB_IGNORED.items():
        reader.ignore(key, why)
    return HubConfig(
        name=reader.string("name", "SealGate"),
        host=reader.string("host", DEFAULT_HOST),
        port=reader.integer("port", DEFAULT_PORT, low=0, high=65535) or 0,
        transport=hub_transport(reader),
        auth=reader.choice("auth", frozenset({"auto", "required"}), "auto"),
        log_level=reader.choice("log_level", LOG_LEVELS, log_level),
        allowed_origins=reader.names("allowed_origins"),
        allowed_hosts=reader.names("allowed_hosts"),
        trusted_proxies=_cidrs(reader, "trusted_proxies"),
        trace_trusted_clients=_cidrs(reader, "trace_trusted_clients"),
        cors_origins=reader.names("cors_origins"),
        max_frame_size=reader.integer(
            "max_frame_size", DEFAULT_MAX_FRAME_SIZE, low=4096, high=256 * 1024 * 1024
        )
        or DEFAULT_MAX_FRAME_SIZE,
        master_key_file=reader.string("master_key_file"),
        max_body_bytes=reader.integer(
            "max_body_bytes", 4 * 1024 * 1024, low=1024, high=1024 * 1024 * 1024
        )
        or 4 * 1024 * 1024,
        body_timeout_s=reader.number("body_timeout_s", 30.0, low=1, high=3600) or 30.0,
        idle_timeout_s=reader.number("idle_timeout_s", 75.0, low=1, high=3600) or 75.0,
        max_streams_per_principal=reader.integer(
            "max_streams_per_principal", 64, low=1, high=100_000
        )
        or 64,
        db_connect_wait_s=_number(reader, "db_connect_wait_s", 30.0, 0, 3600),
        space_url=hub_space_url(reader),
        public_url=_public_url(reader),
    )


def _public_url(reader: Reader) -> str:
    """An absolute http(s) URL without query or fragment; stored without a trailing slash."""
    value = reader.string("public_url").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise reader.error(
            "public_url", "public_url must be an http(s) URL such as https://hub.example.org"
        )
    return value.rstrip("/")


def read_hub_limits(reader: Reader) -> HubLimitsConfig:
    default = HubLimitsConfig()
    return HubLimitsConfig(
        max_failed_logins=reader.integer(
            "max_failed_logins", default.max_failed_logins, low=1, high=1000
        )
        or default.max_failed_logins,
        login_attempts_per_min=reader.integer(
            "login_attempts_per_min", default.login_attempts_per_min, low=1, high=1_000_000
        )
        or default.login_attempts_per_min,
        lockout_minutes=_number(reader, "lockout_minutes", default.lockout_minutes, 0, 525_600),
        session_idle_minutes=_number(
            reader, "session_idle_minutes", default.session_idle_minutes, 1, 525_600
        ),
        session_max_hours=_number(reader, "session_max_hours", default.session_max_hours, 1, 8760),
        max_parallel_requests=reader.integer("max_parallel_requests", None, low=1, high=100_000),
        retry_count=reader.integer("retry_count", 0, low=0, high=10) or 0,
        retry_delay_sec=_number(reader, "retry_delay_sec", default.retry_delay_sec, 0, 600),
        request_timeout_sec=reader.number("request_timeout_sec", None, low=0.1, high=3600),
        search_timeout_sec=reader.number("search_timeout_sec", None, low=0.1, high=3600),
        max_sandbox_connections=reader.integer(
            "max_sandbox_connections", default.max_sandbox_connections, low=1, high=10_000
        )
        or default.max_sandbox_connections,
        audit_checkpoint_sec=_number(
            reader, "audit_checkpoint_sec", default.audit_checkpoint_sec, 1, 86_400
        ),
        audit_checkpoint_leaves=reader.integer(
            "audit_checkpoint_leaves", default.audit_checkpoint_leaves, low=1, high=10_000_000
        )
        or default.audit_checkpoint_leaves,
        audit_export_dir=reader.string("audit_export_dir", ""),
        audit_origin=_audit_origin(reader, default.audit_origin),
        audit_receipts=reader.boolean("audit_receipts", default.audit_receipts),
    )


def _audit_origin(reader: Reader, default: str) -> str:
    """The log's name: a checkpoint's first line and the key's name (no space, no '+')."""
    origin = reader.string("audit_origin", default)
    if not origin or any(c.isspace() or c == "+" for c in origin) or len(origin) > 200:
        raise reader.error("audit_origin", "audit_origin is a name without spaces or '+'")
    return origin


def read_db_sync(reader: Reader) -> DbSyncConfig:
    default = DbSyncConfig()
    reader.ignore(
        "sqlite_path", "the sandbox keeps its hub state under HUB_RUNTIME_DIR (var/sandbox/)"
    )
    reader.ignore("sync_interval_sec", "hub state is written as it changes; nothing syncs")
    return DbSyncConfig(
        tool_cache_ttl_sec=_number(
            reader, "tool_cache_ttl_sec", default.tool_cache_ttl_sec, 0, 366 * 86_400
        ),
        max_cache_entries=reader.integer("max_cache_entries", 0, low=0, high=100_000_000) or 0,
    )


def read_debug(reader: Reader) -> DebugConfig:
    reader.ignore("log_file", "logs go to stderr (journald, docker logs, the Space's log view)")
    config = DebugConfig(
        log_requests=reader.boolean("log_requests", False),
        log_responses=reader.boolean("log_responses", False),
    )
    for key, what in (
        ("log_requests", config.log_requests),
        ("log_responses", config.log_responses),
    ):
        if what:
            reader.warnings.append(
                f"{reader.where(key)}: [DEBUG] {reader.spelled(key)} logs metadata only (tool,"
                " provider, model, status, sizes, tokens, time), never prompts, answers or keys"
            )
    return config


def read_db_query(reader: Reader) -> DbQueryConfig:
    tables = tuple(name.lower() for name in reader.names("tables"))
    for table in tables:
        if not _SQL_NAME.match(table):
            raise reader.error("tables", f"tables: {table!r} is not a table or schema.table name")
        if "." in table and table.split(".", 1)[0] in RESERVED_QUERY_SCHEMAS:
            raise reader.error(
                "tables", f"tables: {table!r} is in a schema that can never be allowlisted"
            )
    functions = tuple(name.lower() for name in reader.names("functions"))
    for function in functions:
        if not _SQL_NAME.match(function):
            raise reader.error("functions", f"functions: {function!r} is not a function name")
    return DbQueryConfig(
        tables=tables,
        functions=functions,
        max_rows=reader.integer("max_rows", DEFAULT_QUERY_MAX_ROWS, low=1, high=HARD_QUERY_MAX_ROWS)
        or DEFAULT_QUERY_MAX_ROWS,
        statement_timeout_ms=reader.integer(
            "statement_timeout_ms", DEFAULT_QUERY_TIMEOUT_MS, low=1, high=3_600_000
        )
        or DEFAULT_QUERY_TIMEOUT_MS,
        max_result_bytes=reader.integer(
            "max_result_bytes",
            DEFAULT_QUERY_MAX_RESULT_BYTES,
            low=1024,
            high=HARD_QUERY_MAX_RESULT_BYTES,
        )
        or DEFAULT_QUERY_MAX_RESULT_BYTES,
    )


def _number(reader: Reader, key: str, default: float, low: float, high: float) -> float:
    value = reader.number(key, default, low=low, high=high)
    return default if value is None else value


def _cidrs(reader: Reader, key: str) -> tuple[str, ...]:
    networks = reader.names(key)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise reader.error(key, f"{key}: {network!r} is not an address or CIDR") from None
    return networks
