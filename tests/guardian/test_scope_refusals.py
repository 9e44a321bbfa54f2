"""A tool refused for lack of an OAuth scope says the token lacks the scope, not that the
role may not use it (issue 24, item 7); a role that refuses is still named."""

from __future__ import annotations

import pytest

from guardian.identity.principal import BUILTIN_ROLES, Principal
from guardian.oauth import scopes
from guardian.policy import admit, tool_refusal
from protocol.errors import Forbidden
from protocol.pyfun import parse

CONFIG = parse(
    """
[ROLE.writer]
tools = "llm_complete, summarize"
[ROLE.writer_END]

[TOOL.summarize]
provider_type = "llm"
description   = "Summarize a text."
[TOOL.summarize_END]
"""
)


def oauth(role_name: str, granted: tuple[str, ...]) -> Principal:
    """What the guardian resolves an OAuth access token to: the role narrowed to the scopes."""
    whole = CONFIG.roles.get(role_name) or BUILTIN_ROLES[role_name]
    return Principal("ada", scopes.narrow(whole, granted, CONFIG), "user", scopes=granted)


@pytest.mark.parametrize(
    ("tool", "needed"),
    [("web_search", "search"), ("summarize", "llm"), ("db_query", "db_query")],
)
async def test_a_missing_scope_is_named_as_the_tokens(tool: str, needed: str) -> None:
    principal = oauth("user", ("mcp",))
    with pytest.raises(Forbidden) as refused:
        await admit(None, principal, tool, CONFIG)
    message = refused.value.message
    assert f"this OAuth token lacks the {needed!r} scope that tool {tool!r} needs" in message
    assert "granted: mcp" in message and f"allow {needed!r}" in message
    assert "role" not in message


async def test_a_role_that_refuses_is_still_blamed_even_through_a_token() -> None:
    principal = oauth("writer", ("mcp", "llm", "search"))  # the scope is there, the role says no
    with pytest.raises(Forbidden, match="role 'writer' may not use tool 'web_search'"):
        await admit(None, principal, "web_search", CONFIG)
    # both shut it: granting the scope would not help, so the role is named
    assert tool_refusal(oauth("writer", ("mcp",)), "web_search", CONFIG) == (
        "role 'writer' may not use tool 'web_search'"
    )


async def test_other_credentials_and_allowed_tools() -> None:
    token_user = Principal("bob", CONFIG.roles["writer"], "user")  # an API token: no scopes
    assert tool_refusal(token_user, "web_search", CONFIG) == (
        "role 'writer' may not use tool 'web_search'"
    )
    await admit(None, oauth("user", ("mcp", "search")), "web_search", CONFIG)  # allowed
