"""`[MCP_SERVER.name]` blocks: read like every other block, refused with `file:line`."""

from __future__ import annotations

import pytest

from protocol.pyfun import PyfunError, parse
from protocol.pyfun.typed import OAUTH_SCOPES


def _block(name: str, *lines: str) -> str:
    body = "\n".join(lines)
    return f"[MCP_SERVER.{name}]\n{body}\n[MCP_SERVER.{name}_END]\n"


def _error(text: str) -> PyfunError:
    with pytest.raises(PyfunError) as caught:
        parse(text, "m.pyfun")
    return caught.value


def test_a_remote_server_with_a_key_and_a_local_stdio_server() -> None:
    text = (
        "[MCP_SERVERS]\n"
        + _block(
            "docs",
            'url = "https://mcp.example.org/mcp"',
            'env_key = "DOCS_MCP_KEY"',
            'deny_tools = "delete_page"',
            'roles = "admin, user"',
            'scopes = "mcp, search"',
            'timeout_sec = "20"',
            'header_x_team = "blue"',
        )
        + _block(
            "files",
            'command = "npx -y @modelcontextprotocol/server-everything stdio"',
            'env = "FILES_ROOT"',
            'env_key = "FILES_TOKEN"',
            'prefix = "f."',
            'allow_tools = "echo, add"',
        )
        + "[MCP_SERVERS_END]\n"
    )
    config = parse(text, "m.pyfun")
    assert config.warnings == ()
    docs, files = config.mcp_servers["docs"], config.mcp_servers["files"]
    assert (docs.transport, docs.url, docs.env_key) == (
        "http",
        "https://mcp.example.org/mcp",
        "DOCS_MCP_KEY",
    )
    assert (docs.auth, docs.auth_header, docs.prefix) == ("bearer", "Authorization", "docs_")
    assert docs.deny_tools == ("delete_page",) and docs.allow_tools == ()
    assert docs.roles == ("admin", "user") and docs.scopes == ("mcp", "search")
    assert docs.timeout_sec == 20.0 and docs.headers == (("X-Team", "blue"),)
    assert files.transport == "stdio" and files.url == ""
    assert files.command == ("npx", "-y", "@modelcontextprotocol/server-everything", "stdio")
    assert files.env == ("FILES_ROOT",) and files.prefix == "f."
    assert files.allow_tools == ("echo", "add") and files.scopes == ("mcp",)


def test_sse_is_read_from_the_url_and_a_header_key_is_named() -> None:
    text = _block(
        "old",
        'url = "https://old.example.org/sse"',
        'env_key = "OLD_KEY"',
        'auth = "header"',
        'auth_header = "X-Api-Token"',
    )
    server = parse(text).mcp_servers["old"]
    assert (server.transport, server.auth, server.auth_header) == ("sse", "header", "X-Api-Token")


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (['url = "http://mcp.example.org/mcp"'], 2, "must use https"),
        (['url = "http://127.0.0.1:9/mcp"'], 2, "must use https"),
        (['url = "https://user:pw@mcp.example.org/mcp"'], 2, "must not carry credentials"),
        (['url = "https://mcp.example.org/mcp?key=1"'], 2, "query or fragment"),
        (['url = "https://a.example/mcp"', 'command = "x"'], 3, "command contradicts url"),
        (['prefix = "x"'], 1, "needs a url or a command"),
        (['command = "x \\"y"'], 2, "cannot be split"),
        (['url = "https://a.example/mcp"', 'env_key = "not a name"'], 3, "not a variable"),
        (['url = "https://a.example/mcp"', 'env = "X"'], 3, "stdio server"),
        (['command = "x"', 'env = "OK, bad-name"'], 3, "not a variable name"),
        (['command = "x"', 'allow_tools = "a"', 'deny_tools = "b"'], 4, "give one list"),
        (['command = "x"', 'allow_tools = "a b"'], 3, "not an MCP tool name"),
        (['command = "x"', 'prefix = "a/b"'], 3, "prefix"),
        (['command = "x"', 'scopes = "everything"'], 3, "not one of"),
        (['command = "x"', 'timeout_sec = "0"'], 3, "between"),
        (['command = "x"', 'transport = "http"'], 3, "must be one of"),
        (['url = "https://a.example/mcp"', 'header_authorization = "x"'], 3, "env_key"),
        (['url = "https://a.example/mcp"', 'header_host = "x"'], 3, "is set here"),
        (['url = "https://a.example/mcp"', 'auth = "header"', 'auth_header = "a b"'], 4, "usable"),
    ],
)
def test_bad_blocks_name_their_line(lines: list[str], line: int, words: str) -> None:
    error = _error(_block("s", *lines))
    assert error.line == line and words in error.problem, error


def test_loopback_http_needs_allow_insecure() -> None:
    text = _block("local", 'url = "http://127.0.0.1:8123/mcp"', 'allow_insecure = "true"')
    assert parse(text).mcp_servers["local"].allow_insecure


def test_prefixes_that_could_name_one_tool_are_refused() -> None:
    text = _block("a", 'command = "x"', 'prefix = "t_"') + _block(
        "b", 'command = "y"', 'prefix = "t_x_"'
    )
    error = _error(text)
    assert error.line == 5 and "prefix" in error.problem


def test_an_inactive_server_is_left_out_and_auto_approve_warns() -> None:
    text = _block("off", 'command = "x"', 'active = "false"') + _block(
        "dev", 'command = "y"', 'auto_approve = "true"'
    )
    config = parse(text, "m.pyfun")
    assert list(config.mcp_servers) == ["dev"]
    assert any("auto_approve is for development only" in w for w in config.warnings)


def test_the_scopes_a_block_may_name_are_sealgate_s_oauth_scopes() -> None:
    from guardian.oauth.scopes import SCOPES

    assert frozenset(SCOPES) == OAUTH_SCOPES
