"""The Host/Origin/content-type rules as pure functions (the attacks live in tests/security)."""

from __future__ import annotations

import pytest

from sandbox.request_guard import HostPolicy, has_body, is_json_type, normalize_origin


def loopback(**kwargs: object) -> HostPolicy:
    options = {"listen_hosts": ["127.0.0.1"], "allowed_hosts": [], "allowed_origins": []}
    options.update(kwargs)
    return HostPolicy.build(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:7860", True),
        ("localhost:7860", True),
        ("LOCALHOST", True),
        ("[::1]:7860", True),
        ("attacker.example:7860", False),
        ("127.0.0.1.nip.io:7860", False),
        ("", False),
        ("localhost.:7860", False),
    ],
)
def test_loopback_binding_serves_loopback_names_only(host: str, allowed: bool) -> None:
    assert loopback().host_allowed(host) is allowed


def test_non_loopback_binding_serves_any_name_unless_narrowed() -> None:
    anywhere = HostPolicy.build(listen_hosts=["0.0.0.0"], allowed_hosts=[], allowed_origins=[])
    assert anywhere.host_allowed("gateway.example")
    narrowed = HostPolicy.build(
        listen_hosts=["0.0.0.0"],
        allowed_hosts=["gateway.example", "other:8443"],
        allowed_origins=[],
    )
    assert narrowed.host_allowed("gateway.example:443")
    assert narrowed.host_allowed("other:8443") and not narrowed.host_allowed("other:8444")
    assert not narrowed.host_allowed("evil.example")
    # One loopback address among others is not "loopback only".
    mixed = HostPolicy.build(
        listen_hosts=["127.0.0.1", "0.0.0.0"], allowed_hosts=[], allowed_origins=[]
    )
    assert mixed.hosts is None


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://127.0.0.1:7860", "127.0.0.1:7860", True),
        ("https://127.0.0.1:7860", "127.0.0.1:7860", True),  # behind a TLS proxy
        ("http://localhost:7860", "127.0.0.1:7860", False),  # another name: another origin
        ("http://127.0.0.1:7861", "127.0.0.1:7860", False),
        ("http://localhost:3000", "localhost:7860", False),
        ("https://gw.example", "gw.example", True),
        ("https://gw.example:443", "gw.example", True),
        ("http://gw.example", "gw.example:80", True),
        ("null", "127.0.0.1:7860", False),
        ("file://", "127.0.0.1:7860", False),
        ("https://app.example", "127.0.0.1:7860", True),  # configured
        ("https://APP.example/", "127.0.0.1:7860", True),
    ],
)
def test_origins(origin: str, host: str, allowed: bool) -> None:
    policy = loopback(allowed_origins=["https://app.example"])
    assert policy.origin_allowed(origin, host) is allowed


def test_a_wildcard_origin_allows_all() -> None:
    assert loopback(allowed_origins=["*"]).origin_allowed("https://any.example", "x")


def test_normalize_origin() -> None:
    assert normalize_origin("HTTPS://Example.COM:443/") == "https://example.com"
    assert normalize_origin("http://[::1]:80") == "http://[::1]"


@pytest.mark.parametrize(
    ("value", "json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        ("text/json", False),
        ("", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_json_content_types(value: str, json: bool) -> None:
    assert is_json_type(value) is json


def test_a_body_is_present_when_length_or_chunked() -> None:
    assert has_body({b"content-length": b"12"})
    assert not has_body({b"content-length": b"0"})
    assert has_body({b"transfer-encoding": b"chunked"})
    assert not has_body({})


def test_space_host_is_served_and_its_https_origin_allowed() -> None:
    space = "owner-hub.hf.space"
    anywhere = HostPolicy.build(
        listen_hosts=["0.0.0.0"], allowed_hosts=[], allowed_origins=[], space_host=space
    )
    assert anywhere.host_allowed(space) and anywhere.origin_allowed(f"https://{space}", "x")
    assert not anywhere.origin_allowed(f"http://{space}", "elsewhere.example")
    assert not anywhere.origin_allowed("https://evil.example", space)
    narrowed = HostPolicy.build(
        listen_hosts=["0.0.0.0"],
        allowed_hosts=["gate.example"],
        allowed_origins=[],
        space_host=space.upper(),
    )
    assert narrowed.host_allowed(space) and narrowed.host_allowed("gate.example")
    assert not narrowed.host_allowed("other.example")
    loopback = HostPolicy.build(
        listen_hosts=["127.0.0.1"], allowed_hosts=[], allowed_origins=[], space_host=space
    )
    assert loopback.host_allowed(space) and loopback.host_allowed("localhost")
    assert not loopback.host_allowed("attacker.example")
