"""The pure rules of the OAuth server: PKCE, redirect URIs, scopes, addresses, resource."""

from __future__ import annotations

import base64
import hashlib
import ipaddress

import pytest

from guardian.oauth import addresses, cimd, pkce, redirects, scopes
from guardian.oauth.resource import resource_id, same_resource
from protocol.pyfun import RoleConfig, parse


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def test_pkce_is_s256_only_and_checks_the_verifier() -> None:
    verifier = "v" * 43
    challenge = _challenge(verifier)
    assert pkce.challenge_ok(challenge, "S256")
    assert not pkce.challenge_ok(challenge, "plain")
    assert not pkce.challenge_ok(None, "S256")
    assert not pkce.challenge_ok("short", "S256")
    assert pkce.verifier_matches(verifier, challenge)
    assert not pkce.verifier_matches("w" * 43, challenge)
    assert not pkce.verifier_matches("v" * 42, _challenge("v" * 42))  # too short to be one
    assert not pkce.verifier_matches(None, challenge)
    assert not pkce.verifier_matches("v" * 43 + " ", challenge)


def test_redirects_match_exactly_but_loopback_on_any_port() -> None:
    registered = ["https://claude.ai/api/mcp/auth_callback", "http://127.0.0.1:33418/cb"]
    assert redirects.matches(registered, "https://claude.ai/api/mcp/auth_callback")
    assert not redirects.matches(registered, "https://claude.ai/api/mcp/auth_callback/")
    assert not redirects.matches(registered, "https://claude.ai/api/mcp/auth_callback?x=1")
    assert not redirects.matches(registered, "https://CLAUDE.ai/api/mcp/auth_callback")
    assert redirects.matches(registered, "http://127.0.0.1:50000/cb")
    assert not redirects.matches(registered, "http://127.0.0.1:50000/other")
    assert not redirects.matches(registered, "http://localhost:50000/cb")  # another host
    assert not redirects.matches(["https://a.example:8443/cb"], "https://a.example:9443/cb")


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://claude.ai/api/mcp/auth_callback", True),
        ("http://127.0.0.1:9/callback", True),
        ("http://[::1]:9/callback", True),
        ("http://localhost/callback", True),
        ("cursor://anysphere.cursor-retrieval/oauth/callback", True),
        ("http://hub.example/callback", False),
        ("https://a.example/cb#frag", False),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("/relative", False),
        ("https://a.example:99999/cb", False),
    ],
)
def test_which_redirect_uris_may_be_registered(uri: str, ok: bool) -> None:
    assert (redirects.acceptable(uri) is None) is ok


def test_scopes_parse_default_and_refuse_unknown() -> None:
    assert scopes.parse(None) == scopes.DEFAULT_SCOPES
    assert scopes.parse("") == scopes.DEFAULT_SCOPES
    assert scopes.parse("llm mcp offline_access") == ("mcp", "llm")
    with pytest.raises(scopes.ScopeError, match="unknown scope 'root'"):
        scopes.parse("mcp root")
    assert scopes.covers(["mcp", "llm"], ["llm"])
    assert not scopes.covers(["mcp"], ["mcp", "admin"])


def test_scopes_narrow_a_role_to_their_tools_and_never_widen_it() -> None:
    config = parse(
        '[TOOL.summarize]\nprovider_type = "llm"\n[TOOL.summarize_END]\n'
        '[TOOL.news]\nprovider_type = "search"\n[TOOL.news_END]\n',
        "t.pyfun",
    )
    every = RoleConfig(name="user")
    llm = scopes.narrow(every, ["llm"], config)
    assert set(llm.tools) == {"llm_complete", "embeddings", "summarize"}
    assert set(scopes.narrow(every, ["search", "mcp"], config).tools) == {
        "web_search",
        "news",
        "health_check",
        "list_active_tools",
        "get_model_info",
    }
    assert scopes.narrow(every, ["db_query"], config).tools == ("db_query",)
    few = RoleConfig(name="few", tools=("health_check", "summarize"))
    assert scopes.narrow(few, ["llm", "search"], config).tools == ("summarize",)
    assert scopes.narrow(few, ["admin"], config).tools == ()


@pytest.mark.parametrize(
    ("address", "allow_loopback", "why"),
    [
        ("93.184.215.14", False, None),
        ("2606:4700::1111", False, None),
        ("127.0.0.1", False, "a loopback address"),
        ("127.0.0.1", True, None),
        ("::1", True, None),
        ("10.0.0.1", True, "a private address"),
        ("172.16.5.4", False, "a private address"),
        ("192.168.0.1", False, "a private address"),
        ("100.64.0.1", False, "a private address"),  # carrier-grade NAT
        ("fd00::1", False, "a private address"),
        ("169.254.169.254", True, "a link-local address"),
        ("fe80::1", False, "a link-local address"),
        ("::ffff:10.0.0.1", False, "a private address"),
        ("::ffff:127.0.0.1", False, "a loopback address"),
        ("0.0.0.0", False, "not a unicast address"),
        ("224.0.0.1", False, "not a unicast address"),
    ],
)
def test_the_address_filter(address: str, allow_loopback: bool, why: str | None) -> None:
    assert addresses.refusal(ipaddress.ip_address(address), allow_loopback) == why


async def test_names_are_checked_after_resolution() -> None:
    with pytest.raises(cimd.MetadataFetchError, match="loopback"):
        await cimd.checked_addresses("localhost", 443, allow_loopback=False)
    assert await cimd.checked_addresses("localhost", 443, allow_loopback=True)
    with pytest.raises(cimd.MetadataFetchError, match="private"):
        await cimd.checked_addresses("10.1.1.1", 443, allow_loopback=True)
    with pytest.raises(cimd.MetadataFetchError, match="resolve"):
        await cimd.checked_addresses("no-such-host.invalid", 443, allow_loopback=False)


@pytest.mark.parametrize(
    ("url", "loopback", "problem"),
    [
        ("https://app.example/oauth/client.json", False, None),
        ("https://app.example/", False, "must have a path"),
        ("http://app.example/client.json", False, "must be an https URL"),
        ("http://127.0.0.1:8000/client.json", False, "must be an https URL"),
        ("http://127.0.0.1:8000/client.json", True, None),
        ("http://10.0.0.1/client.json", True, "must be an https URL"),
        ("https://user:pw@app.example/c.json", False, "no credentials"),
        ("https://app.example/c.json#x", False, "no fragment"),
    ],
)
def test_metadata_urls(url: str, loopback: bool, problem: str | None) -> None:
    found = cimd.url_problem(url, loopback)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_resource_identifier() -> None:
    config = parse('[HUB]\nport = "8080"\n[HUB_END]\n', "t.pyfun")
    assert resource_id(config, {}) == "http://127.0.0.1:8080"
    assert resource_id(config, {"HUB_PORT": "9000"}) == "http://127.0.0.1:9000"
    assert resource_id(config, {"SPACE_HOST": "me-hub.hf.space"}) == "https://me-hub.hf.space"
    public = parse('[HUB]\npublic_url = "https://hub.example.org/"\n[HUB_END]\n', "t.pyfun")
    assert resource_id(public, {"SPACE_HOST": "x.hf.space"}) == "https://hub.example.org"
    assert same_resource(None, "https://hub.example.org")
    assert same_resource("https://HUB.example.org/mcp", "https://hub.example.org")
    assert not same_resource("https://hub.example.org.evil/mcp", "https://hub.example.org")
    assert not same_resource("https://other.example", "https://hub.example.org")


def test_public_url_must_be_an_http_url() -> None:
    from protocol.pyfun import PyfunError

    with pytest.raises(PyfunError, match="public_url"):
        parse('[HUB]\npublic_url = "hub.example.org"\n[HUB_END]\n', "t.pyfun")


@pytest.mark.parametrize(
    "metadata",
    [
        {"redirect_uris": 5},
        {"redirect_uris": []},
        {"redirect_uris": [None]},
        {"redirect_uris": ["https://a.example/cb"], "client_uri": 5},
        {"redirect_uris": ["https://a.example/cb"], "scope": 5},
        {"redirect_uris": ["https://a.example/cb"], "jwks": "x"},
        {"redirect_uris": ["https://a.example/cb"], "jwks": {"keys": 5}},
        {"redirect_uris": ["https://a.example/cb"], "response_types": [1]},
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]},
        {"redirect_uris": ["https://a.example/cb"], "scope": "mcp root"},
        {"redirect_uris": ["https://a.example/cb"], "client_uri": "not a url"},
        {"redirect_uris": ["http://a.example/cb"]},
    ],
)
def test_client_metadata_of_any_shape_gets_a_typed_refusal(metadata: dict[str, object]) -> None:
    from guardian.oauth.service import OAuthService
    from protocol.errors import InvalidParams

    with pytest.raises(InvalidParams) as refused:
        OAuthService._check_metadata(metadata)
    assert refused.value.data["oauth_error"] in ("invalid_client_metadata", "invalid_redirect_uri")
