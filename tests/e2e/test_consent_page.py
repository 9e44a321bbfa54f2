"""The consent page as a person sees it, in headless Chromium: every scope said in words, the
client's self-chosen name marked unverified next to it, and Allow drawn as the primary
button and Deny as the secondary one (their computed styles differ)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_browser_sign_in import WAIT_S, chromium, loopback_client, pkce
from tests.helpers import Stack, run_ctl

PASSWORD = "dora's consent password"
#: The words each scope must be said in (a fragment of guardian/oauth/scopes.py's text).
WORDS = {
    "mcp": "Connect to this hub over MCP",
    "llm": "Send prompts to the language models",
    "search": "Run web searches",
}


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    started = stack_factory()
    done = run_ctl(
        started.runtime / "guardian" / "admin.sock", "users", "add", "dora", stdin=PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    return started


def test_the_consent_page_says_scopes_in_words_marks_the_name_and_sets_allow_apart(
    stack: Stack,
) -> None:
    with loopback_client() as (redirect_uri, received), chromium() as browser:
        registered = httpx.post(
            f"{stack.url}/oauth/register",
            json={"client_name": "Official Claude (really)", "redirect_uris": [redirect_uri]},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        _, challenge = pkce()
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "mcp llm search",
        }
        browser.get(f"{stack.url}/oauth/authorize?{urlencode(query)}")
        browser.find_element(By.NAME, "username").send_keys("dora")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.ID, "allow"))

        # the name the client chose, marked as such right beside it, with the reason
        client = browser.find_element(By.ID, "client")
        assert client.text == "Official Claude (really)"
        marker = browser.find_element(By.ID, "unverified")
        assert marker.text == "unverified name" and marker.is_displayed()
        assert marker.location["y"] == pytest.approx(client.location["y"], abs=20)
        why = browser.find_element(By.ID, "unverified-why").text
        assert "chose this name itself" in why and "has not checked it" in why

        # each scope in words, with its name
        items = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#scopes li")]
        assert len(items) == 3, items
        for scope, words in WORDS.items():
            assert any(words in item and item.endswith(scope) for item in items), (scope, items)

        # Allow is the primary action, Deny the secondary one: they look different
        allow, deny = browser.find_element(By.ID, "allow"), browser.find_element(By.ID, "deny")
        assert allow.text == "Allow" and deny.text == "Deny"
        assert "primary" in (allow.get_attribute("class") or "")
        assert "secondary" in (deny.get_attribute("class") or "")
        for prop in ("background-color", "color", "font-weight"):
            assert allow.value_of_css_property(prop) != deny.value_of_css_property(prop), prop

        # and Deny still works as before: back to the client with access_denied
        deny.click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.current_url.startswith(redirect_uri))
    assert any("error=access_denied" in path for path in received), received


def test_a_person_withdraws_a_grant_from_the_grants_page_in_chromium(stack: Stack) -> None:
    """Allow a client, sign in on the status page, follow its link to the grants page, and
    withdraw: the browser's own form post passes the Origin rule and the form token."""
    with loopback_client() as (redirect_uri, received), chromium() as browser:
        registered = httpx.post(
            f"{stack.url}/oauth/register",
            json={"client_name": "Withdrawn app", "redirect_uris": [redirect_uri]},
            timeout=30,
        )
        client_id = registered.json()["client_id"]
        _, challenge = pkce()
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "mcp llm",
        }
        browser.get(f"{stack.url}/oauth/authorize?{urlencode(query)}")
        browser.find_element(By.NAME, "username").send_keys("dora")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.ID, "allow"))
        browser.find_element(By.ID, "allow").click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.current_url.startswith(redirect_uri))

        browser.get(stack.url)  # the status page's login form, then the page itself
        browser.find_element(By.ID, "username").send_keys("dora")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.ID, "grants-link"))
        browser.find_element(By.ID, "grants-link").click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.ID, "grants"))
        row = browser.find_element(By.CSS_SELECTOR, "#grants .grant")
        assert "Withdrawn app" in row.text and "unverified name" in row.text
        assert "Send prompts to the language models" in row.text
        row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, WAIT_S).until(
            lambda b: b.find_elements(By.ID, "withdrawn") or "forbidden" in b.page_source
        )
        assert "forbidden" not in browser.page_source, browser.page_source
        assert browser.find_elements(By.ID, "no-grants")
    assert any("code=" in path for path in received), received
