"""The `.pyfun` configuration language: text in, typed configuration out.

    [HUB]
    name = "SealGate"            # a comment
    port = "7860"
    [HUB_END]

    [LLM_PROVIDERS]              # grouping sections are optional
    [LLM_PROVIDER.anthropic]
    base_url = "https://api.anthropic.com/v1"
    env_key  = "ANTHROPIC_API_KEY, ANTHROPIC_API_KEY_2"
    [LLM_PROVIDER.anthropic_END]
    [LLM_PROVIDERS_END]

Parsing is two passes. `lexing` checks the layout (sections, END markers, quoting) and keeps
every value with its line number; `sections` turns each section into the dataclasses of `typed`
through `reader`, with `original` reading the original hub's spellings and `urls` checking
addresses; `build` runs both passes and checks fallback chains. Any error raises `PyfunError`
naming `file:line`; unknown sections and keys only add to `PyfunConfig.warnings`. Nothing here
reads a file or the environment: callers pass the text and, for overrides, a mapping.
"""

from __future__ import annotations

from protocol.pyfun.build import parse, with_env_overrides
from protocol.pyfun.typed import (
    API_KINDS,
    BLOCK_KINDS,
    DEFAULT_HOST,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_PORT,
    DEFAULT_QUERY_MAX_RESULT_BYTES,
    DEFAULT_QUERY_MAX_ROWS,
    DEFAULT_QUERY_TIMEOUT_MS,
    DEFAULT_TIMEOUT_SEC,
    GROUPS,
    HARD_QUERY_MAX_RESULT_BYTES,
    HARD_QUERY_MAX_ROWS,
    KNOWN_BASE_URLS,
    LOG_LEVELS,
    PLAIN_SECTIONS,
    RESERVED_QUERY_SCHEMAS,
    RETIRED_HOSTS,
    SEARCH_KINDS,
    TOOL_KINDS,
    UNUSED_ORIGINAL_SECTIONS,
    DbQueryConfig,
    DbSyncConfig,
    DebugConfig,
    HubConfig,
    HubLimitsConfig,
    McpServerConfig,
    ModelConfig,
    ProviderConfig,
    PyfunConfig,
    PyfunError,
    RoleConfig,
    ToolConfig,
)
from protocol.pyfun.urls import is_loopback_host

__all__ = [
    "API_KINDS",
    "BLOCK_KINDS",
    "DEFAULT_HOST",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_PORT",
    "DEFAULT_QUERY_MAX_RESULT_BYTES",
    "DEFAULT_QUERY_MAX_ROWS",
    "DEFAULT_QUERY_TIMEOUT_MS",
    "DEFAULT_TIMEOUT_SEC",
    "GROUPS",
    "HARD_QUERY_MAX_RESULT_BYTES",
    "HARD_QUERY_MAX_ROWS",
    "KNOWN_BASE_URLS",
    "LOG_LEVELS",
    "PLAIN_SECTIONS",
    "RESERVED_QUERY_SCHEMAS",
    "RETIRED_HOSTS",
    "SEARCH_KINDS",
    "TOOL_KINDS",
    "UNUSED_ORIGINAL_SECTIONS",
    "DbQueryConfig",
    "DbSyncConfig",
    "DebugConfig",
    "HubConfig",
    "HubLimitsConfig",
    "McpServerConfig",
    "ModelConfig",
    "ProviderConfig",
    "PyfunConfig",
    "PyfunError",
    "RoleConfig",
    "ToolConfig",
    "is_loopback_host",
    "parse",
    "with_env_overrides",
]
