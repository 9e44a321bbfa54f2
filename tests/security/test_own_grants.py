"""A person's own OAuth grants page (`GET /oauth/grants`, `POST /oauth/grants/revoke`)
against a running stack: only the caller's own consents are listed or withdrawn (whose comes
from the credential, resolved by the guardian), an OAuth client's token is refused, the
withdraw form keeps the Origin rule and a single-use form token bound to the user, and a
withdrawn grant's access and refresh tokens stop working."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.e2e.oauth_person import REDIRECT_URI, TICKET
from tests.helpers import Stack, run_ctl

PASSWORD = "a long enough password"
FORM_TOKEN = re.compile(r"name=form_token value='([^']+)'")


def _ctl(stack: Stack, *args: str, stdin: str = "") -> str:
    done = run_ctl(stack.runtime / "guardian" / "admin.sock", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One stack for the module; users bob and carol."""
    started = Stack()
    try:
        started.start()
        for name in ("bob", "carol"):
            _ctl(started, "users", "add", name, stdin=f"{PASSWORD}\n")
        yield started
    finally:
        started.stop()
        started.cleanup()


def register(stack: Stack, name: str) -> str:
    answer = httpx.post(
        f"{stack.url}/oauth/register",
        json={"client_name": name, "redirect_uris": [REDIRECT_URI]},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["client_id"])


def grant(stack: Stack, client_id: str, user: str) -> dict[str, Any]:
    """`user` signs in and allows `client_id` (scopes mcp llm); the tokens it gets."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "mcp llm",
    }
    url = f"{stack.url}/oauth/authorize?{urlencode(query)}"
    answer = httpx.post(url, data={"username": user, "password": PASSWORD}, timeout=30)
    if answer.status_code == 200:
        match = TICKET.search(answer.text)
        assert match, answer.text
        answer = httpx.post(
            f"{stack.url}/oauth/consent",
            data={"ticket": match.group(1), "approve": "yes"},
            timeout=30,
        )
    assert answer.status_code == 303, answer.text
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    tokens = httpx.post(
        f"{stack.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
        },
        timeout=30,
    )
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body


@contextlib.contextmanager
def session(stack: Stack, user: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in as `user` (the session cookie)."""
    with httpx.Client(
        base_url=stack.url, timeout=30, headers={"user-agent": f"ua-{user}"}
    ) as client:
        answer = client.post("/auth/login", json={"username": user, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        yield client


def form_token(page: httpx.Response) -> str:
    match = FORM_TOKEN.search(page.text)
    assert match, page.text
    return match.group(1)


def withdraw(
    client: httpx.Client, client_id: str, token: str, origin: str | None = None
) -> httpx.Response:
    headers = {"origin": origin if origin is not None else str(client.base_url).rstrip("/")}
    return client.post(
        "/oauth/grants/revoke",
        data={"client_id": client_id, "form_token": token},
        headers=headers,
    )


def works(stack: Stack, access_token: str) -> bool:
    """Whether the token opens a sealed call (a fresh User-Agent: no cached gate answer)."""
    answer = httpx.get(
        f"{stack.url}/v1/models",
        headers={
            "authorization": f"Bearer {access_token}",
            "user-agent": secrets.token_hex(4),
        },
        timeout=30,
    )
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


def refreshes(stack: Stack, client_id: str, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
        },
        timeout=30,
    )


def test_a_person_lists_and_withdraws_their_grant_and_its_tokens_stop(stack: Stack) -> None:
    client_id = register(stack, "Editor of Bob")
    issued = grant(stack, client_id, "bob")
    assert works(stack, issued["access_token"])
    with session(stack, "bob") as bob:
        _lists_and_withdraws(stack, bob, client_id, issued)


def _lists_and_withdraws(
    stack: Stack, bob: httpx.Client, client_id: str, issued: dict[str, Any]
) -> None:
    # the status page links the grants page
    status = bob.get("/", headers={"accept": "text/html"})
    assert "href=/oauth/grants" in status.text
    page = bob.get("/oauth/grants")
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "Editor of Bob" in page.text and "unverified name" in page.text
    assert client_id in page.text
    assert "Send prompts to the language models" in page.text  # the scope in words
    assert "not yet" not in page.text  # allowed on, last active: both known
    done = withdraw(bob, client_id, form_token(page))
    assert done.status_code == 303, done.text
    after = bob.get(done.headers["location"])
    assert "id=withdrawn" in after.text and client_id not in after.text
    # the consent and every token under it are gone
    assert not works(stack, issued["access_token"])
    refused = refreshes(stack, client_id, issued["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    audit = _ctl(stack, "audit", "tail", "--user", "bob")
    assert "oauth.own_grant_revoke" in audit


def test_another_persons_grant_can_be_neither_listed_nor_withdrawn(stack: Stack) -> None:
    bobs_client = register(stack, "Agent of Bob")
    carols_client = register(stack, "Agent of Carol")
    bobs = grant(stack, bobs_client, "bob")
    grant(stack, carols_client, "carol")
    with session(stack, "bob") as bob, session(stack, "carol") as carol:
        _cannot_reach(stack, bob, carol, bobs_client, carols_client, bobs)


def _cannot_reach(
    stack: Stack,
    bob: httpx.Client,
    carol: httpx.Client,
    bobs_client: str,
    carols_client: str,
    bobs: dict[str, Any],
) -> None:
    carols_page = carol.get("/oauth/grants")
    assert carols_client in carols_page.text and bobs_client not in carols_page.text
    # carol names bob's client (its id guessed or seen) with her own valid form token
    guessed = withdraw(carol, bobs_client, form_token(carols_page))
    assert guessed.status_code == 404, guessed.text
    # bob's form token, replayed from carol's browser, is not hers
    bobs_page = bob.get("/oauth/grants")
    stolen = withdraw(carol, bobs_client, form_token(bobs_page))
    assert stolen.status_code == 400 and "form expired or was used" in stolen.text
    # bob's grant and tokens are untouched
    assert bobs_client in bob.get("/oauth/grants").text
    assert works(stack, bobs["access_token"])
    assert refreshes(stack, bobs_client, bobs["refresh_token"]).status_code == 200


def test_an_oauth_token_or_no_credential_is_refused_and_an_api_token_is_heard(
    stack: Stack,
) -> None:
    client_id = register(stack, "Scoped client")
    issued = grant(stack, client_id, "bob")
    bearer = {"authorization": f"Bearer {issued['access_token']}", "origin": stack.url}
    listed = httpx.get(f"{stack.url}/oauth/grants", headers=bearer, timeout=30)
    assert listed.status_code == 403, listed.text
    assert "token cannot list or withdraw consents" in listed.text
    assert "form_token" not in listed.text
    posted = httpx.post(
        f"{stack.url}/oauth/grants/revoke",
        data={"client_id": client_id, "form_token": "anything"},
        headers=bearer,
        timeout=30,
    )
    assert posted.status_code == 403, posted.text
    # nobody signed in: the page says where to sign in, the form is refused
    anonymous = httpx.get(f"{stack.url}/oauth/grants", timeout=30)
    assert anonymous.status_code == 401 and "Sign in first" in anonymous.text
    nobody = httpx.post(
        f"{stack.url}/oauth/grants/revoke",
        data={"client_id": client_id, "form_token": "anything"},
        timeout=30,
    )
    assert nobody.status_code == 401
    # the person's own API token is their credential: it lists their grants
    token = _ctl(stack, "tokens", "issue", "--user", "bob").strip()
    own = httpx.get(
        f"{stack.url}/oauth/grants", headers={"authorization": f"Bearer {token}"}, timeout=30
    )
    assert own.status_code == 200 and client_id in own.text, own.text
    assert works(stack, issued["access_token"])  # nothing was withdrawn


def test_the_withdraw_form_keeps_the_origin_rule_and_a_single_use_token(stack: Stack) -> None:
    client_id = register(stack, "Guarded client")
    issued = grant(stack, client_id, "carol")
    with session(stack, "carol") as carol:
        _guarded(stack, carol, client_id, issued)


def _guarded(stack: Stack, carol: httpx.Client, client_id: str, issued: dict[str, Any]) -> None:
    token = form_token(carol.get("/oauth/grants"))
    for origin in ("https://attacker.example", "null"):
        foreign = withdraw(carol, client_id, token, origin=origin)
        assert foreign.status_code == 403, (origin, foreign.text)
    plain = carol.post(
        "/oauth/grants/revoke",
        content=f"client_id={client_id}&form_token={token}",
        headers={"content-type": "text/plain", "origin": stack.url},
    )
    assert plain.status_code == 415
    missing = carol.post(
        "/oauth/grants/revoke", data={"client_id": client_id}, headers={"origin": stack.url}
    )
    assert missing.status_code == 400
    wrong = withdraw(carol, client_id, secrets.token_urlsafe(32))
    assert wrong.status_code == 400
    assert works(stack, issued["access_token"])  # none of that withdrew anything
    assert withdraw(carol, client_id, token).status_code == 303
    again = withdraw(carol, client_id, token)  # spent
    assert again.status_code == 400 and "form expired or was used" in again.text
