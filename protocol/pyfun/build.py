"""`parse`: the two passes in order, then the checks across sections (fallback chains,
names used twice) and the notes sorted by line."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace

from protocol.pyfun.lexing import read_sections
from protocol.pyfun.mcp_servers import read_mcp_server
from protocol.pyfun.original import read_log_level, with_attribution
from protocol.pyfun.reader import Reader
from protocol.pyfun.sections import (
    read_db_query,
    read_db_sync,
    read_debug,
    read_hub,
    read_hub_limits,
    read_model,
    read_provider,
    read_role,
    read_tool,
)
from protocol.pyfun.typed import (
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


def _check_fallbacks(providers: Mapping[str, ProviderConfig], source: str) -> None:
    for provider in providers.values():
        if provider.fallback_to and provider.fallback_to not in providers:
            raise PyfunError(
                source,
                provider.line,
                f"{provider.name}: fallback_to names {provider.fallback_to!r}, which is not a"
                f" {provider.kind} provider here",
            )
    for start in providers.values():
        chain = [start.name]
        current = start
        while current.fallback_to:
            current = providers[current.fallback_to]
            if current.name in chain:
                loop = " -> ".join([*chain, current.name])
                raise PyfunError(source, start.line, f"fallback chain loops: {loop}")
            chain.append(current.name)


def _check_prefixes(servers: Mapping[str, McpServerConfig], source: str) -> None:
    """Two servers whose prefixes nest could both claim one tool name."""
    ordered = sorted(servers.values(), key=lambda s: s.line)
    for index, server in enumerate(ordered):
        for earlier in ordered[:index]:
            if server.prefix.startswith(earlier.prefix) or earlier.prefix.startswith(server.prefix):
                raise PyfunError(
                    source,
                    server.line,
                    f"MCP server {server.name!r}: its prefix {server.prefix!r} and that of"
                    f" {earlier.name!r} (line {earlier.line}) could name the same tool; give"
                    " each server a prefix of its own",
                )


def parse(text: str, source: str = ".pyfun") -> PyfunConfig:
    """Parse `.pyfun` text; raises `PyfunError` with `source:line` on the first problem."""
    layout = read_sections(text, source)
    warnings, translations = layout.warnings, layout.translations
    hub = HubConfig()
    hub_name_set = False
    llm: dict[str, ProviderConfig] = {}
    search: dict[str, ProviderConfig] = {}
    models: dict[str, ModelConfig] = {}
    tools: dict[str, ToolConfig] = {}
    roles: dict[str, RoleConfig] = {}
    mcp_servers: dict[str, McpServerConfig] = {}
    hub_limits = HubLimitsConfig()
    db_sync = DbSyncConfig()
    db_query = DbQueryConfig()
    debug = DebugConfig()
    log_level = ""

    # [HUB_LIMITS] and [DEBUG] give defaults to the blocks, wherever they stand in the file.
    first = ("HUB_LIMITS", "DEBUG")
    ordered = [s for s in layout.sections if s.kind in first] + [
        s for s in layout.sections if s.kind not in first
    ]
    for section in ordered:
        reader = Reader(section, source)
        if section.kind == "HUB":
            hub = read_hub(reader, log_level or "info")
            hub_name_set = reader.has("name")
        elif section.kind == "LLM_PROVIDER":
            llm[section.name] = read_provider(reader, "llm", hub_limits)
        elif section.kind == "SEARCH_PROVIDER":
            search[section.name] = read_provider(reader, "search", hub_limits)
        elif section.kind == "MODEL":
            model = read_model(reader)
            if model is not None:
                models[section.name] = model
        elif section.kind == "TOOL":
            tools[section.name] = read_tool(reader, hub_limits)
        elif section.kind == "ROLE":
            roles[section.name] = read_role(reader)
        elif section.kind == "MCP_SERVER":
            server = read_mcp_server(reader)
            if server is not None:
                mcp_servers[section.name] = server
        elif section.kind == "HUB_LIMITS":
            hub_limits = read_hub_limits(reader)
        elif section.kind == "DB_SYNC":
            db_sync = read_db_sync(reader)
        elif section.kind == "DB_QUERY":
            db_query = read_db_query(reader)
        elif section.kind == "DEBUG":
            log_level = read_log_level(reader)
            debug = read_debug(reader)
        else:
            continue
        warnings.extend(reader.unused_warnings())
        translations.extend(reader.translations)
    if log_level and hub.log_level == "info" and not any(s.kind == "HUB" for s in ordered):
        hub = replace(hub, log_level=log_level)

    overlap = set(llm) & set(search)
    if overlap:
        name = sorted(overlap)[0]
        raise PyfunError(source, search[name].line, f"provider name {name!r} is used twice")
    _check_fallbacks(llm, source)
    _check_fallbacks(search, source)
    llm = with_attribution(llm, hub, hub_name_set)
    _check_prefixes(mcp_servers, source)

    return PyfunConfig(
        source=source,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        hub=hub,
        llm_providers=llm,
        search_providers=search,
        models=models,
        tools=tools,
        roles=roles,
        mcp_servers=mcp_servers,
        hub_limits=hub_limits,
        db_sync=db_sync,
        db_query=db_query,
        debug=debug,
        warnings=_by_line(warnings, source),
        translations=_by_line(translations, source),
    )


def _by_line(notes: list[str], source: str) -> tuple[str, ...]:
    """`file:line: ...` notes in the order of their lines (stable for equal lines)."""

    def line(note: str) -> int:
        number = note[len(source) + 1 :].split(":", 1)[0] if note.startswith(f"{source}:") else ""
        return int(number) if number.isdigit() else 0

    return tuple(sorted(notes, key=line))


def with_env_overrides(config: PyfunConfig, environ: Mapping[str, str]) -> PyfunConfig:
    """Apply `HUB_HOST` and `HUB_PORT` from `environ`, which win over `[HUB]`."""
    hub = config.hub
    host = environ.get("HUB_HOST", "").strip()
    port_text = environ.get("HUB_PORT", "").strip()
    if host:
        hub = replace(hub, host=host)
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise PyfunError("HUB_PORT", 0, f"HUB_PORT={port_text!r} is not a port number")
        hub = replace(hub, port=int(port_text))
    return replace(config, hub=hub)
