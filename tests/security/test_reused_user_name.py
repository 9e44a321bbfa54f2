"""A user name used again is a new person: after `users delete demo` and `users add demo`,
nothing the first demo held (API token, session, OAuth consent, access or refresh token)
works for the second, whose role may be wider. A new password or a new role revokes the
user's OAuth consents and tokens. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.oauth_person import REDIRECT_URI
from tests.helpers import Stack
from tests.security.stackdb import BACKENDS, Backend, ctl, make_backend
from tests.security.test_oauth import (
    PASSWORD,
    exchange,
    oauth_error,
    pkce,
    redirect_query,
    refresh,
    request_params,
    sign_in,
    status_with,
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return make_backend(request)


def add_user(stack: Stack, name: str, role: str = "user") -> None:
    ctl(stack, "users", "add", name, "--role", role, stdin=f"{PASSWORD}\n")


def register(stack: Stack) -> str:
    answer = httpx.post(
        f"{stack.url}/oauth/register",
        json={"client_name": "reuse", "redirect_uris": [REDIRECT_URI]},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["client_id"])


def oauth_tokens(stack: Stack, client_id: str, user: str) -> dict[str, Any]:
    verifier, challenge = pkce()
    query = redirect_query(sign_in(stack, request_params(client_id, challenge), user=user))
    answer = exchange(stack, client_id, query["code"], verifier)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def session_of(stack: Stack, user: str) -> str:
    answer = httpx.post(
        f"{stack.url}/auth/login", json={"username": user, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return str(answer.cookies["sg_session"])


def status_page_sees(stack: Stack, session: str) -> int:
    """What /v1/models answers to a session cookie (401 once the session is gone)."""
    answer = httpx.get(f"{stack.url}/v1/models", cookies={"sg_session": session}, timeout=30)
    return answer.status_code


def test_a_new_user_of_an_old_name_inherits_nothing(
    stack_factory: Callable[..., Stack], backend: Backend
) -> None:
    stack = stack_factory(env=backend.env)
    add_user(stack, "keeper", "admin")  # auth stays on while demo is gone
    add_user(stack, "demo")
    client_id = register(stack)
    api_token = ctl(stack, "tokens", "issue", "--user", "demo")
    first = oauth_tokens(stack, client_id, "demo")
    session = session_of(stack, "demo")
    assert status_with(stack, api_token) == 200
    assert status_with(stack, first["access_token"]) == 200

    ctl(stack, "users", "delete", "demo")
    add_user(stack, "demo", "admin")  # another person, with a wider role

    assert status_with(stack, api_token) == 401
    assert status_with(stack, first["access_token"]) == 401
    assert status_with(stack, first["access_token"], "/metrics") in (401, 403)
    assert oauth_error(refresh(stack, client_id, first["refresh_token"])) == "invalid_grant"
    assert status_page_sees(stack, session) == 401
    # the new demo signs in afresh: the consent page asks again (no remembered grant)
    _, challenge = pkce()
    url = f"{stack.url}/oauth/authorize"
    answer = httpx.post(
        url,
        params=request_params(client_id, challenge),
        data={"username": "demo", "password": PASSWORD},
        timeout=30,
    )
    assert answer.status_code == 200 and "name=ticket" in answer.text, answer.text
    # every row of the first demo is revoked or gone, and the new one has another id
    ids = backend.rows(stack, "SELECT id FROM {s}users WHERE name = 'demo'")
    live = backend.rows(
        stack,
        "SELECT user_id FROM {s}oauth_tokens WHERE user_name = 'demo' AND revoked_at IS NULL",
    )
    assert live == [] and len(ids) == 1 and ids[0]["id"].startswith("u_")
    assert backend.rows(stack, "SELECT * FROM {s}oauth_grants WHERE user_name = 'demo'") == []
    assert backend.rows(stack, "SELECT * FROM {s}api_tokens WHERE user_name = 'demo'") == []


@pytest.mark.parametrize("change", ["passwd", "role"])
def test_a_new_password_or_role_revokes_oauth_consents_and_tokens(
    stack_factory: Callable[..., Stack], change: str
) -> None:
    stack = stack_factory()
    add_user(stack, "demo")
    client_id = register(stack)
    issued = oauth_tokens(stack, client_id, "demo")
    api_token = ctl(stack, "tokens", "issue", "--user", "demo")
    if change == "passwd":
        ctl(stack, "users", "passwd", "demo", stdin=f"{PASSWORD}\n")
    else:
        ctl(stack, "users", "role", "demo", "admin")
    assert oauth_error(refresh(stack, client_id, issued["refresh_token"])) == "invalid_grant"
    assert status_with(stack, issued["access_token"]) == 401
    assert "demo" not in ctl(stack, "oauth", "grants", "list", "--json")
    assert status_with(stack, api_token) == 200  # an operator's API token is not a consent


def test_a_new_user_of_an_old_name_has_a_budget_of_their_own(
    stack_factory: Callable[..., Stack], backend: Backend
) -> None:
    from tests.fakes.providers import FakeAnthropic
    from tests.security.test_budget import config

    fake = FakeAnthropic(name="anthropic", reply_text="an answer").start()
    try:
        text = config(fake).replace('monthly_budget_usd = "5.0"', 'monthly_budget_usd = "1.5"')
        stack = stack_factory(config_text=text, env=backend.env)
        add_user(stack, "keeper", "admin")

        def call(token: str) -> int:
            body = {
                "model": "dear-model",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}],
            }
            answer = httpx.post(
                f"{stack.url}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            return answer.status_code

        add_user(stack, "demo", "capped")
        first = ctl(stack, "tokens", "issue", "--user", "demo")
        assert call(first) == 200
        assert call(first) == 429  # 0.712 USD spent; the next call's maximum does not fit
        ctl(stack, "users", "delete", "demo")
        add_user(stack, "demo", "capped")
        assert call(ctl(stack, "tokens", "issue", "--user", "demo")) == 200
    finally:
        fake.stop()
