"""Forwarded headers behind a trusted proxy: only the first `X-Forwarded-For` /
`X-Forwarded-Proto` field line was read, so behind a proxy that adds a line of its own (rather
than appending to the client's) the client chose its address (dodging the per-address login
limit, forging audit addresses) and its scheme (dropping `Secure` from the session cookie).
All lines are combined (RFC 9110, 5.3) before the trusted hop is taken; both proxy styles,
one line with a list and several lines, give the same answer."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from sandbox.caller import Proxies, client_address
from tests.helpers import Stack, run_ctl
from tests.security.common import admin_socket

REAL = "198.51.100.7"
FORGED = "203.0.113.66"
PASSWORD = "a long enough password"


def scope(peer: str, headers: list[tuple[str, str]]) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 5000),
        "scheme": "http",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }


TRUSTED = Proxies.parse(["10.0.0.0/8"])
SPACE = Proxies.parse([], space_host="owner-hub.hf.space")


@pytest.mark.parametrize("proxies", [TRUSTED, SPACE], ids=["trusted_proxies", "space"])
@pytest.mark.parametrize(
    "headers",
    [
        # one header with a list: the proxy appended to the client's line
        [("x-forwarded-for", f"{FORGED}, {REAL}"), ("x-forwarded-proto", "http, https")],
        # several header lines: the proxy added a line of its own after the client's
        [
            ("x-forwarded-for", FORGED),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-for", REAL),
            ("x-forwarded-proto", "https"),
        ],
    ],
    ids=["one-line", "several-lines"],
)
def test_the_proxy_has_the_last_word_in_either_style(
    proxies: Proxies, headers: list[tuple[str, str]]
) -> None:
    assert client_address(scope("10.0.0.1", headers), proxies) == (REAL, "https")


def test_two_trusted_proxies_in_a_row_with_lines_of_their_own() -> None:
    headers = [
        ("x-forwarded-for", FORGED),  # the client's
        ("x-forwarded-proto", "http"),
        ("x-forwarded-for", REAL),  # the outer proxy's: the address it took the call from
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "10.0.0.2"),  # the inner proxy's: the outer one
        ("x-forwarded-proto", "http"),
    ]
    assert client_address(scope("10.0.0.1", headers), TRUSTED) == (REAL, "https")


def test_a_proxy_that_overwrites_the_scheme_is_believed() -> None:
    headers = [("x-forwarded-for", f"{FORGED}, {REAL}"), ("x-forwarded-proto", "https")]
    assert client_address(scope("10.0.0.1", headers), TRUSTED) == (REAL, "https")
    # and an untrusted peer is still believed about nothing
    assert client_address(scope("192.0.2.5", headers), TRUSTED) == ("192.0.2.5", "http")


# the whole stack -------------------------------------------------------------------------------
def test_a_login_behind_a_proxy_that_adds_its_own_lines(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(
        config_text='[HUB]\ntrusted_proxies = "127.0.0.1/32"\n[HUB_END]\n',
    )
    added = run_ctl(admin_socket(stack), "users", "add", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.returncode == 0, added.stderr
    # What the proxy on 127.0.0.1 sends on: the client's forged lines, then its own.
    lines = [
        ("X-Forwarded-For", FORGED),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-For", REAL),
        ("X-Forwarded-Proto", "https"),
        ("Content-Type", "application/json"),
    ]
    body = json.dumps({"username": "ada", "password": PASSWORD})
    with httpx.Client(timeout=30) as http:
        good = http.post(f"{stack.url}/auth/login", content=body, headers=lines)
        bad = http.post(
            f"{stack.url}/auth/login",
            content=json.dumps({"username": "ada", "password": "not the password"}),
            headers=lines,
        )
    assert good.status_code == 200, good.text
    assert bad.status_code == 401, bad.text
    cookie = good.headers["set-cookie"].lower()
    assert "secure" in cookie, cookie  # the proxy took the call over https
    audit = run_ctl(admin_socket(stack), "audit", "tail", "--json")
    assert audit.returncode == 0, audit.stderr
    logins = [e for e in json.loads(audit.stdout)["entries"] if e["action"] == "login"]
    assert logins, audit.stdout
    assert {e["ip"] for e in logins} == {REAL}, logins
