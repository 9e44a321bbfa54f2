"""OAuth sign-in in a real browser: headless Chromium, driven by Selenium through Debian's
chromedriver. A client registers, the person signs in and allows it in the browser, the
browser follows the redirect to the client's loopback listener, and the client trades the
code for a token that works. A browser sets `Origin` on the pages' own form posts (`null`
under some referrer policies), which the httpx-driven tests of the same flow never do."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import Stack, run_ctl

#: Debian's chromium-driver (tests/setup_machine.sh installs it). Given explicitly, so that
#: Selenium never tries to download a driver of its own.
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,900",
)
PASSWORD = "carol's browser password"
WAIT_S = 30


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    binary = shutil.which("chromium")
    if binary is None or not CHROMEDRIVER.is_file():
        pytest.fail(
            "chromium or /usr/bin/chromedriver is missing: tests/setup_machine.sh installs"
            " Debian's chromium and chromium-driver"
        )
    with tempfile.TemporaryDirectory(prefix="sealgate-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(WAIT_S)
            yield driver
        finally:
            driver.quit()


@contextlib.contextmanager
def loopback_client() -> Iterator[tuple[str, list[str]]]:
    """The client's redirect listener on 127.0.0.1, as a desktop or CLI client runs one:
    (its redirect URI, the request paths it received)."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.path)
            body = b"<!doctype html><title>Signed in</title><p id=done>You may close this window."
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    started = stack_factory()
    done = run_ctl(
        started.runtime / "guardian" / "admin.sock", "users", "add", "carol", stdin=PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    return started


def test_a_person_signs_in_and_allows_a_client_in_chromium(stack: Stack) -> None:
    with loopback_client() as (redirect_uri, received), chromium() as browser:
        registered = httpx.post(
            f"{stack.url}/oauth/register",
            json={"client_name": "Browser test client", "redirect_uris": [redirect_uri]},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        verifier, challenge = pkce()
        state = secrets.token_urlsafe(8)
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "mcp llm",
        }
        authorize = f"{stack.url}/oauth/authorize?{urlencode(query)}"
        page = httpx.get(authorize, timeout=30)
        assert page.headers["referrer-policy"] == "same-origin"

        browser.get(authorize)
        assert browser.find_element(By.ID, "client").text == "Browser test client"
        browser.find_element(By.NAME, "username").send_keys("carol")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # The consent page (a refused post would show the guard's JSON instead).
        WebDriverWait(browser, WAIT_S).until(
            lambda b: (
                b.find_elements(By.CSS_SELECTOR, "button[value=yes]")
                or "forbidden" in b.page_source
            )
        )
        assert "forbidden" not in browser.page_source, browser.page_source
        browser.find_element(By.CSS_SELECTOR, "button[value=yes]").click()
        WebDriverWait(browser, WAIT_S).until(lambda b: b.current_url.startswith(redirect_uri))
        assert browser.find_element(By.ID, "done").text.startswith("You may close")

    callbacks = [path for path in received if path.startswith("/callback?")]
    assert len(callbacks) == 1, received
    answer = {k: v[0] for k, v in parse_qs(urlsplit(callbacks[0]).query).items()}
    assert answer["state"] == state and "code" in answer, answer
    tokens = httpx.post(
        f"{stack.url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
        },
        timeout=30,
    )
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    models = httpx.get(
        f"{stack.url}/v1/models", headers={"authorization": f"Bearer {access}"}, timeout=30
    )
    assert models.status_code == 200, models.text
    assert httpx.get(f"{stack.url}/v1/models", timeout=30).status_code == 401
