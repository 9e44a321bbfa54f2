from __future__ import annotations

import re

import pytest

from protocol.contract import Params
from protocol.errors import InvalidParams
from protocol.methods import METHODS, Surface, methods_for
from protocol.schema import Field, validate

SCHEMA = {
    "name": Field(type=str, max_len=5),
    "count": Field(type=int, min=1, max=10, required=False),
    "mode": Field(type=str, choices=frozenset({"a", "b"}), required=False),
    "tags": Field(type=list, items=str, required=False, max_len=3),
}


def test_valid_params_pass() -> None:
    validate(SCHEMA, {"name": "abc", "count": 3, "mode": "a", "tags": ["x"]})
    validate(SCHEMA, {"name": "abc", "count": None})


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "missing parameter 'name'"),
        ({"name": 1}, "'name' must be a string"),
        ({"name": "toolong"}, "longer than 5"),
        ({"name": "a", "count": True}, "'count' must be an integer"),
        ({"name": "a", "count": 0}, "at least 1"),
        ({"name": "a", "count": 11}, "at most 10"),
        ({"name": "a", "mode": "c"}, "one of: a, b"),
        ({"name": "a", "tags": [1]}, "'tags[0]'"),
        ({"name": "a", "tags": ["a"] * 4}, "longer than 3"),
        ({"name": "a", "extra": 1}, "unknown parameter 'extra'"),
    ],
)
def test_invalid_params_name_the_field(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidParams, match=re.escape(fragment)):
        validate(SCHEMA, params)


def test_every_method_has_schemas_and_a_surface() -> None:
    for name, spec in METHODS.items():
        assert spec.name == name
        assert spec.surfaces
        assert issubclass(spec.params, Params) and isinstance(spec.result, dict)


def test_sandbox_surface_is_exactly_the_contract_so_far() -> None:
    # ARCHITECTURE.md section 3 lists the sandbox surface; nothing outside it may appear.
    contract = {
        "hello",
        "health",
        "llm.complete",
        "llm.stream",
        "llm.embed",
        "search.web",
        "db.query",
        "models.info",
        "auth.login",
        "auth.verify",
        "auth.logout",
        # the OAuth methods of issue 18 (ARCHITECTURE.md section 7)
        "oauth.server_info",
        "oauth.authorize",
        "oauth.login",
        "oauth.consent",
        "oauth.token",
        "oauth.register",
        "oauth.revoke",
        # a signed-in person's own consents (issue 24 item 8; ARCHITECTURE.md section 7)
        "oauth.own_grants",
        "oauth.own_grant_revoke",
        # the caller's own usage and budget (issue 28; the MCP resource sealgate://usage/me)
        "usage.mine",
        # LLM calls as tasks (issue 28 item 5)
        "tasks.start",
        "tasks.get",
        "tasks.cancel",
        # a request's input tokens (issue 27, /v1/messages/count_tokens)
        "llm.count_tokens",
        # a caller's own receipts (issue 30 item 4; ARCHITECTURE.md section 3)
        "receipts.get",
        # upstream MCP servers by configured name, never a URL (issue 32)
        "mcp.list",
        "mcp.call",
        # any replica answers: session ids and the legacy SSE relay (issue 29)
        "relay.session_open",
        "relay.session_check",
        "relay.listen",
        "relay.post",
    }
    assert set(methods_for(Surface.SANDBOX)) <= contract
    relay = {"relay.session_open", "relay.session_check", "relay.listen", "relay.post"}
    assert relay <= set(methods_for(Surface.SANDBOX))
    assert not relay & set(methods_for(Surface.ADMIN))
    assert "usage.mine" in methods_for(Surface.SANDBOX)
    assert "usage.mine" not in methods_for(Surface.ADMIN)
    assert not {"tasks.start", "tasks.get", "tasks.cancel"} & set(methods_for(Surface.ADMIN))
    assert {"oauth.own_grants", "oauth.own_grant_revoke"} <= set(methods_for(Surface.SANDBOX))
    assert not {"oauth.own_grants", "oauth.own_grant_revoke"} & set(methods_for(Surface.ADMIN))
    assert "llm.count_tokens" in methods_for(Surface.SANDBOX)
    assert "llm.count_tokens" not in methods_for(Surface.ADMIN)
    assert {"mcp.list", "mcp.call"} <= set(methods_for(Surface.SANDBOX))
    assert not {"mcp.list", "mcp.call"} & set(methods_for(Surface.ADMIN))
    assert not {"mcp.servers", "mcp.diff", "mcp.approve"} & set(methods_for(Surface.SANDBOX))
