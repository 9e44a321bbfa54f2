"""OAuth 2.1 refusals against a running stack: each way a client, a page or a stolen value
could get a token it should not, refused where it is tried (see tests/e2e/test_oauth_flow.py
for the whole flow with the official client)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.e2e.oauth_person import REDIRECT_URI, TICKET
from tests.helpers import Stack, run_ctl

PASSWORD = "a long enough password"
LOOPBACK_DOCUMENTS = {"SEALGATE_TEST_ONLY_ALLOW_LOOPBACK_CLIENT_METADATA": "1"}


def _ctl(stack: Stack, *args: str, stdin: str = "") -> str:
    done = run_ctl(stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One stack for the module (with the test-only loopback-document setting, which must
    still refuse every other private address); users bob (user) and root (admin)."""
    started = Stack(env=LOOPBACK_DOCUMENTS)
    try:
        started.start()
        _ctl(started, "users", "add", "bob", stdin=f"{PASSWORD}\n")
        _ctl(started, "users", "add", "ruth", "--role", "admin", stdin=f"{PASSWORD}\n")
        yield started
    finally:
        started.stop()
        started.cleanup()


@pytest.fixture(scope="module")
def client_id(stack: Stack) -> str:
    registered = httpx.post(
        f"{stack.url}/oauth/register",
        json={"client_name": "refusal tests", "redirect_uris": [REDIRECT_URI]},
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["token_endpoint_auth_method"] == "none" and "client_secret" not in body
    return str(body["client_id"])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def request_params(client_id: str, challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "mcp llm",
        **overrides,
    }
    return {k: v for k, v in params.items() if v is not None}


def sign_in(
    stack: Stack, params: dict[str, str], user: str = "bob", approve: bool = True
) -> httpx.Response:
    """Open the page, sign in, answer the consent page: the last answer (a 303, or the
    refusal that stopped the way)."""
    url = f"{stack.url}/oauth/authorize?{urlencode(params)}"
    page = httpx.get(url, timeout=30)
    if page.status_code != 200:
        return page
    answer = httpx.post(url, data={"username": user, "password": PASSWORD}, timeout=30)
    if answer.status_code == 200:
        match = TICKET.search(answer.text)
        assert match, answer.text
        answer = httpx.post(
            f"{stack.url}/oauth/consent",
            data={"ticket": match.group(1), "approve": "yes" if approve else "no"},
            timeout=30,
        )
    return answer


def redirect_query(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI.split("/callback")[0]), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_for(stack: Stack, client_id: str, **overrides: str | None) -> tuple[str, str]:
    verifier, challenge = pkce()
    query = redirect_query(sign_in(stack, request_params(client_id, challenge, **overrides)))
    assert "code" in query, query
    return query["code"], verifier


def exchange(
    stack: Stack, client_id: str, code: str, verifier: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        **extra,
    }
    return httpx.post(f"{stack.url}/oauth/token", data=form, timeout=30)


def refresh(stack: Stack, client_id: str, token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return httpx.post(f"{stack.url}/oauth/token", data=form, timeout=30)


def tokens(stack: Stack, client_id: str, **overrides: str | None) -> dict[str, Any]:
    code, verifier = code_for(stack, client_id, **overrides)
    answer = exchange(stack, client_id, code, verifier)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def status_with(stack: Stack, access_token: str, path: str = "/v1/models") -> int:
    headers = {"authorization": f"Bearer {access_token}"}
    return httpx.get(f"{stack.url}{path}", headers=headers, timeout=30).status_code


def oauth_error(answer: httpx.Response) -> str:
    assert answer.status_code in (400, 401), answer.text
    return str(answer.json()["error"])


# -- the resource: tokens are for this hub only ---------------------------------------------
def test_a_token_for_another_resource_is_never_issued_nor_accepted(
    stack: Stack, client_id: str
) -> None:
    _, challenge = pkce()
    asked_elsewhere = request_params(client_id, challenge, resource="https://other.example/mcp")
    answer = httpx.get(f"{stack.url}/oauth/authorize?{urlencode(asked_elsewhere)}")
    assert redirect_query(answer)["error"] == "invalid_target"

    code, verifier = code_for(stack, client_id, resource=f"{stack.url}/mcp")
    swapped = exchange(stack, client_id, code, verifier, resource="https://other.example")
    assert oauth_error(swapped) == "invalid_target"

    # a token stored for another audience (another hub's, or this hub's before its public
    # URL changed) is refused by the resource server
    issued = tokens(stack, client_id)
    assert status_with(stack, issued["access_token"]) == 200
    db = sqlite3.connect(stack.runtime / "guardian" / "guardian.db")
    try:
        digest = hashlib.sha256(issued["access_token"].encode()).hexdigest()
        with db:
            db.execute(
                "UPDATE oauth_tokens SET resource = 'https://other.example' WHERE token_hash = ?",
                (digest,),
            )
    finally:
        db.close()
    # the guardian and the gate keep a good answer for 5 s; a fresh client address is not
    # needed: the sealed call behind /v1/models resolves the token again
    refused = httpx.get(
        f"{stack.url}/v1/models",
        headers={"authorization": f"Bearer {issued['access_token']}", "user-agent": "fresh"},
    )
    assert refused.status_code == 401
    assert "resource_metadata=" in refused.headers["www-authenticate"]


# -- codes --------------------------------------------------------------------------------
def test_a_wrong_pkce_verifier_is_refused(stack: Stack, client_id: str) -> None:
    code, _ = code_for(stack, client_id)
    other_verifier, _ = pkce()
    assert oauth_error(exchange(stack, client_id, code, other_verifier)) == "invalid_grant"
    assert oauth_error(exchange(stack, client_id, code, "short")) == "invalid_grant"


def test_pkce_is_required_and_plain_is_refused(stack: Stack, client_id: str) -> None:
    _, challenge = pkce()
    for overrides in ({"code_challenge": None}, {"code_challenge_method": "plain"}):
        params = request_params(client_id, challenge, **overrides)
        answer = httpx.get(f"{stack.url}/oauth/authorize?{urlencode(params)}")
        query = redirect_query(answer)
        assert query["error"] == "invalid_request" and query["state"] == params["state"]


def test_a_reused_code_is_refused_and_revokes_what_it_gave(stack: Stack, client_id: str) -> None:
    code, verifier = code_for(stack, client_id)
    first = exchange(stack, client_id, code, verifier)
    assert first.status_code == 200
    assert status_with(stack, first.json()["access_token"]) == 200
    assert oauth_error(exchange(stack, client_id, code, verifier)) == "invalid_grant"
    assert status_with(stack, first.json()["access_token"]) == 401
    assert oauth_error(refresh(stack, client_id, first.json()["refresh_token"])) == "invalid_grant"


def test_a_code_is_bound_to_its_client_and_redirect(stack: Stack, client_id: str) -> None:
    other = httpx.post(
        f"{stack.url}/oauth/register", json={"redirect_uris": [REDIRECT_URI]}
    ).json()["client_id"]
    code, verifier = code_for(stack, client_id)
    assert oauth_error(exchange(stack, other, code, verifier)) == "invalid_grant"
    code, verifier = code_for(stack, client_id)
    moved = exchange(stack, client_id, code, verifier, redirect_uri="http://127.0.0.1:9/other")
    assert oauth_error(moved) == "invalid_grant"


# -- refresh tokens -------------------------------------------------------------------------
def test_a_reused_refresh_token_revokes_the_family(stack: Stack, client_id: str) -> None:
    first = tokens(stack, client_id)
    rotated = refresh(stack, client_id, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert status_with(stack, second["access_token"]) == 200

    # the old refresh token again (a thief's copy): refused, and everything of the family dies
    assert oauth_error(refresh(stack, client_id, first["refresh_token"])) == "invalid_grant"
    assert status_with(stack, second["access_token"]) == 401
    assert oauth_error(refresh(stack, client_id, second["refresh_token"])) == "invalid_grant"
    audit = _ctl(stack, "audit", "tail", "--user", "bob")
    assert "refresh token reused" in audit


# -- redirect URIs --------------------------------------------------------------------------
def test_an_unregistered_redirect_uri_is_refused_without_redirecting(
    stack: Stack, client_id: str
) -> None:
    _, challenge = pkce()
    for uri in ("https://evil.example/callback", "http://127.0.0.1:9/elsewhere"):
        params = request_params(client_id, challenge, redirect_uri=uri)
        answer = httpx.get(f"{stack.url}/oauth/authorize?{urlencode(params)}")
        assert answer.status_code == 400 and "location" not in answer.headers
        assert "redirect_uri is not registered" in answer.text
    # RFC 8252: a native client's loopback redirect may use any port
    params = request_params(client_id, challenge, redirect_uri="http://127.0.0.1:55123/callback")
    assert httpx.get(f"{stack.url}/oauth/authorize?{urlencode(params)}").status_code == 200
    for uris in (["http://evil.example/cb"], ["javascript:alert(1)"], ["https://a.example/#x"]):
        registered = httpx.post(f"{stack.url}/oauth/register", json={"redirect_uris": uris})
        assert registered.status_code == 400, uris
        assert registered.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")


# -- client metadata documents ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("client", "why"),
    [
        ("https://10.20.30.40/client.json", "private address"),
        ("https://192.168.1.1:8443/app/client.json", "private address"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fd00::1]/client.json", "private address"),
        ("https://[::ffff:10.0.0.1]/client.json", "private address"),
    ],
)
def test_a_metadata_url_resolving_to_a_private_address_is_refused(
    stack: Stack, client: str, why: str
) -> None:
    _, challenge = pkce()
    params = request_params(client, challenge)
    answer = httpx.get(f"{stack.url}/oauth/authorize?{urlencode(params)}", timeout=30)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert why in answer.text


def test_a_loopback_metadata_url_is_refused_without_the_test_setting() -> None:
    plain = Stack()
    try:
        plain.start()
        _, challenge = pkce()
        for client, why in (
            # a name, checked after resolution: localhost resolves to loopback
            (f"https://localhost:{plain.port}/client.json", "loopback address"),
            (f"https://127.0.0.1:{plain.port}/client.json", "loopback address"),
            (f"http://127.0.0.1:{plain.port}/client.json", "unknown client_id"),
        ):
            params = request_params(client, challenge)
            answer = httpx.get(f"{plain.url}/oauth/authorize?{urlencode(params)}", timeout=30)
            assert answer.status_code == 400 and why in answer.text, (client, answer.text)
        server = httpx.get(f"{plain.url}/.well-known/oauth-authorization-server").json()
        assert server["client_id_metadata_document_supported"] is True
    finally:
        plain.stop()
        plain.cleanup()


# -- scopes ---------------------------------------------------------------------------------
def test_admin_scope_is_refused_to_a_non_admin(stack: Stack, client_id: str) -> None:
    _, challenge = pkce()
    answer = sign_in(stack, request_params(client_id, challenge, scope="mcp admin"))
    assert redirect_query(answer)["error"] == "invalid_scope"
    # an admin who does not ask is no admin through the token; one who asks is
    plain = tokens(stack, client_id, scope="mcp llm")
    assert status_with(stack, plain["access_token"]) == 200
    admin_plain = _admin_tokens(stack, client_id, "mcp")
    assert status_with(stack, admin_plain["access_token"], "/metrics") == 403
    admin_asked = _admin_tokens(stack, client_id, "mcp admin")
    assert admin_asked["scope"] == "mcp admin"
    assert status_with(stack, admin_asked["access_token"], "/metrics") == 200


def _admin_tokens(stack: Stack, client_id: str, scope: str) -> dict[str, Any]:
    verifier, challenge = pkce()
    answer = sign_in(stack, request_params(client_id, challenge, scope=scope), user="ruth")
    query = redirect_query(answer)
    exchanged = exchange(stack, client_id, query["code"], verifier)
    assert exchanged.status_code == 200, exchanged.text
    body: dict[str, Any] = exchanged.json()
    return body


def test_a_token_without_the_scope_of_a_surface_gets_403_insufficient_scope(
    stack: Stack, client_id: str
) -> None:
    issued = tokens(stack, client_id, scope="llm")
    assert status_with(stack, issued["access_token"]) == 200  # /v1 needs llm
    answer = httpx.post(
        f"{stack.url}/mcp",
        headers={"authorization": f"Bearer {issued['access_token']}"},
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert answer.status_code == 403
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp"' in challenge
    # a refresh cannot widen what the person allowed
    assert oauth_error(_widen(stack, client_id, issued)) == "invalid_scope"


def _widen(stack: Stack, client_id: str, issued: dict[str, Any]) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": issued["refresh_token"],
        "client_id": client_id,
        "scope": "llm db_query",
    }
    return httpx.post(f"{stack.url}/oauth/token", data=form, timeout=30)


# -- the pages ------------------------------------------------------------------------------
def test_the_sign_in_form_refuses_a_foreign_origin_and_cannot_be_framed(
    stack: Stack, client_id: str
) -> None:
    _, challenge = pkce()
    url = f"{stack.url}/oauth/authorize?{urlencode(request_params(client_id, challenge))}"
    page = httpx.get(url)
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    forged = httpx.post(
        url,
        data={"username": "bob", "password": PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    # the token endpoint is meant to be reached cross-site (no cookie is read there)
    cross_site = httpx.post(
        f"{stack.url}/oauth/token",
        data={"grant_type": "authorization_code", "code": "nope", "client_id": client_id},
        headers={"origin": "https://claude.ai"},
    )
    assert cross_site.status_code == 400 and cross_site.json()["error"] == "invalid_grant"
    assert cross_site.headers["access-control-allow-origin"] == "*"


def test_a_wrong_password_on_the_page_gives_no_code(stack: Stack, client_id: str) -> None:
    _, challenge = pkce()
    url = f"{stack.url}/oauth/authorize?{urlencode(request_params(client_id, challenge))}"
    answer = httpx.post(url, data={"username": "bob", "password": "not the password"})
    assert answer.status_code == 401 and "location" not in answer.headers
    assert "invalid user name or password" in answer.text
    denied = sign_in(stack, request_params(client_id, challenge, scope="search"), approve=False)
    assert redirect_query(denied)["error"] == "access_denied"


# -- a refused refresh spends nothing ------------------------------------------------------
def test_a_refused_refresh_leaves_the_refresh_token_usable(stack: Stack, client_id: str) -> None:
    issued = tokens(stack, client_id, scope="llm")
    assert oauth_error(_widen(stack, client_id, issued)) == "invalid_scope"
    elsewhere = httpx.post(
        f"{stack.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": client_id,
            "resource": "https://other.example/mcp",
        },
        timeout=30,
    )
    assert oauth_error(elsewhere) == "invalid_target"
    # neither refusal rotated the token: it still refreshes, once, and the family lives
    rotated = refresh(stack, client_id, issued["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert status_with(stack, rotated.json()["access_token"]) == 200
    assert oauth_error(refresh(stack, client_id, issued["refresh_token"])) == "invalid_grant"


# -- registration: typed refusals, a cap and an expiry ---------------------------------------
def _register(stack: Stack, body: Any) -> httpx.Response:
    return httpx.post(f"{stack.url}/oauth/register", json=body, timeout=30)


def test_registration_refuses_hostile_metadata_with_typed_400s(stack: Stack) -> None:
    for levels in (5000, 40):  # past the JSON parser's recursion, and past the RPC's nesting
        text = f'{{"redirect_uris": ["{REDIRECT_URI}"], "x": {"[" * levels}{"]" * levels}}}'
        nested = httpx.post(
            f"{stack.url}/oauth/register",
            content=text,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert nested.status_code == 400, nested.text
        assert nested.json()["error"] == "invalid_client_metadata"
    for jwks in ({}, {"keys": "nope"}, {"keys": [1]}):
        answer = _register(stack, {"redirect_uris": [REDIRECT_URI], "jwks": jwks})
        assert answer.status_code == 400, (jwks, answer.text)
        assert answer.json()["error"] == "invalid_client_metadata"
    for body in ([], "text", 5, None):
        answer = _register(stack, body)
        assert answer.status_code == 400, (body, answer.text)
    assert "Traceback" not in stack.logs()


def test_registrations_stop_at_the_cap_with_a_typed_error_and_a_security_event() -> None:
    capped = Stack(env={"SEALGATE_OAUTH_MAX_CLIENTS": "2"})
    try:
        capped.start()
        body = {"client_name": "cap", "redirect_uris": [REDIRECT_URI]}
        assert [_register(capped, body).status_code for _ in range(2)] == [201, 201]
        refused = _register(capped, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "temporarily_unavailable"
        assert "maximum of 2 registered clients" in refused.json()["error_description"]
        assert "registration refused" in capped.logs()
        audit = _ctl(capped, "audit", "tail", "--json")
        assert "cap of 2 clients" in audit
    finally:
        capped.stop()
        capped.cleanup()


def test_an_unused_registration_expires_and_frees_its_place() -> None:
    env = {"SEALGATE_OAUTH_MAX_CLIENTS": "1", "SEALGATE_OAUTH_UNUSED_CLIENT_HOURS": "0.001"}
    short = Stack(env=env)  # 3.6 s
    try:
        short.start()
        body = {"client_name": "soon gone", "redirect_uris": [REDIRECT_URI]}
        first = _register(short, body)
        assert first.status_code == 201, first.text
        assert _register(short, body).status_code == 400  # the cap of one holds
        time.sleep(4)
        second = _register(short, body)  # the unused first one expired
        assert second.status_code == 201, second.text
        _, challenge = pkce()
        gone = request_params(first.json()["client_id"], challenge)
        answer = httpx.get(f"{short.url}/oauth/authorize?{urlencode(gone)}", timeout=30)
        assert answer.status_code in (400, 401) and "location" not in answer.headers
        assert "unknown client_id" in answer.text
    finally:
        short.stop()
        short.cleanup()
