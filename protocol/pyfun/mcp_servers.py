"""`[MCP_SERVER.name]`: an upstream MCP server behind the hub (docs/UPSTREAM_MCP.md).

Checked like a provider block: a URL is https, or plain http to a loopback host with
`allow_insecure`; it carries no credential, query or fragment (the credential is `env_key`,
which the guardian adds). A stdio server is a `command` run without a shell, with exactly the
variables `env_key` and `env` name.
"""

from __future__ import annotations

import re
import shlex

from protocol.pyfun.lexing import KEY
from protocol.pyfun.reader import Reader
from protocol.pyfun.typed import (
    DEFAULT_TIMEOUT_SEC,
    MCP_AUTH_KINDS,
    MCP_TRANSPORTS,
    OAUTH_SCOPES,
    McpServerConfig,
)
from protocol.pyfun.urls import check_url, provider_headers

#: An MCP tool name (the 2025-11-25 specification's characters, at most 128).
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
#: Headers the guardian never lets a block set or name: hop-by-hop, framing, MCP's own.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "accept"}
)


def read_mcp_server(reader: Reader) -> McpServerConfig | None:
    """The block as configuration, or None when `active = "false"`."""
    name = reader.section.name
    if not TOOL_NAME.match(name):
        raise reader.error("", f"[MCP_SERVER.{name}]: a server's name is letters, digits, _ . -")
    url = reader.string("url")
    command_text = reader.string("command")
    if url and command_text:
        raise reader.error(
            "command", f"command contradicts url ({reader.where('url')}): give one of them"
        )
    if not url and not command_text:
        raise reader.error("url", f"MCP server {name!r} needs a url or a command")
    allow_insecure = reader.boolean("allow_insecure", False)
    command: tuple[str, ...] = ()
    if url:
        check_url(reader, url, allow_insecure, key="url")
        default = "sse" if url.rstrip("/").endswith("/sse") else "http"
        transport = reader.choice("transport", MCP_TRANSPORTS - {"stdio"}, default)
        for key in ("env", "args", "read_paths", "write_paths", "connect_ports"):
            if reader.has(key):
                raise reader.error(key, f"{key} applies to a stdio server (command) only")
    else:
        transport = reader.choice("transport", frozenset({"stdio"}), "stdio")
        command = _command(reader, command_text)
        if reader.has("allow_insecure"):
            reader.warn("allow_insecure", "a stdio server has no URL")
    env_key = reader.string("env_key")
    if env_key and not KEY.match(env_key):
        raise reader.error("env_key", f"env_key {env_key!r} is not a variable name")
    env = reader.names("env")
    for variable in env:
        if not KEY.match(variable):
            raise reader.error("env", f"env: {variable!r} is not a variable name")
    auth = reader.choice("auth", MCP_AUTH_KINDS, "bearer")
    auth_header = _auth_header(reader, auth)
    headers = provider_headers(reader) if url else ()
    for header, _ in headers:
        if header.lower() in _RESERVED_HEADERS or header.lower() == auth_header.lower():
            key = "header_" + header.lower().replace("-", "_")
            raise reader.error(key, f"{header} is set here")
    allow_tools = _tool_names(reader, "allow_tools")
    deny_tools = _tool_names(reader, "deny_tools")
    if allow_tools and deny_tools:
        raise reader.error(
            "deny_tools",
            f"deny_tools contradicts allow_tools ({reader.where('allow_tools')}): give one list",
        )
    prefix = reader.string("prefix", f"{name}_")
    if not _PREFIX.match(prefix):
        raise reader.error("prefix", f"prefix {prefix!r} may hold letters, digits and _ . - only")
    scopes = reader.names("scopes", ("mcp",))
    for scope in scopes:
        if scope not in OAUTH_SCOPES:
            raise reader.error(
                "scopes", f"scopes: {scope!r} is not one of {', '.join(sorted(OAUTH_SCOPES))}"
            )
    config = McpServerConfig(
        name=name,
        transport=transport,
        url=url.rstrip("/") if url else "",
        command=command,
        env_key=env_key,
        auth=auth,
        auth_header=auth_header,
        env=env,
        read_paths=_paths(reader, "read_paths"),
        write_paths=_paths(reader, "write_paths"),
        connect_ports=_ports(reader),
        allow_insecure=allow_insecure,
        headers=headers,
        allow_tools=allow_tools,
        deny_tools=deny_tools,
        prefix=prefix,
        roles=reader.names("roles", ("*",)),
        scopes=scopes,
        timeout_sec=_seconds(reader, "timeout_sec", DEFAULT_TIMEOUT_SEC),
        connect_timeout_sec=_seconds(reader, "connect_timeout_sec", 10.0),
        auto_approve=reader.boolean("auto_approve", False),
        line=reader.section.line,
    )
    if config.auto_approve:
        reader.warnings.append(
            f"{reader.where('auto_approve')}: [MCP_SERVER.{name}] auto_approve is for"
            " development only: every tool definition is approved as seen (the guardian"
            " refuses it unless in open mode on loopback)"
        )
    return config if reader.boolean("active", True) else None


def _command(reader: Reader, text: str) -> tuple[str, ...]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise reader.error("command", f"command cannot be split into words: {exc}") from None
    words += list(reader.names("args")) if reader.has("args") else []
    if not words:
        raise reader.error("command", "command is empty")
    return tuple(words)


def _auth_header(reader: Reader, auth: str) -> str:
    if auth == "bearer":
        if reader.has("auth_header"):
            reader.warn("auth_header", 'auth = "bearer" always uses Authorization')
        return "Authorization"
    header = reader.string("auth_header", "X-API-Key")
    if not _HEADER_NAME.match(header) or header.lower() in _RESERVED_HEADERS:
        raise reader.error("auth_header", f"auth_header {header!r} is not a usable header name")
    return header


def _paths(reader: Reader, key: str) -> tuple[str, ...]:
    paths = reader.names(key)
    for path in paths:
        if not path.startswith("/") or "\x00" in path:
            raise reader.error(key, f"{key}: {path!r} is not an absolute path")
    return paths


def _ports(reader: Reader) -> tuple[int, ...]:
    ports: list[int] = []
    for text in reader.names("connect_ports"):
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise reader.error("connect_ports", f"connect_ports: {text!r} is not a TCP port")
        ports.append(int(text))
    return tuple(ports)


def _tool_names(reader: Reader, key: str) -> tuple[str, ...]:
    names = reader.names(key)
    for name in names:
        if not TOOL_NAME.match(name):
            raise reader.error(key, f"{key}: {name!r} is not an MCP tool name")
    return names


def _seconds(reader: Reader, key: str, default: float) -> float:
    value = reader.number(key, default, low=0.1, high=3600)
    return default if value is None else value
