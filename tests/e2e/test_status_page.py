"""The status page (`GET /`) as a person sees it: who is signed in (with a Log out), every
model `/v1/models` lists, the base URLs to give a client, the runtime's file paths for
admins only, and long model names that stay readable in a real browser (headless Chromium,
Selenium, Debian's chromedriver)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from protocol.protections import SandboxProtections
from sandbox.protections_page import hide_paths, protections_html
from tests.e2e.test_browser_sign_in import WAIT_S, chromium
from tests.e2e.world import KEYS
from tests.helpers import EXAMPLE_CONFIG, Stack, run_ctl

BOOTSTRAP = "bootstrap-status-page-0123456789ab"
PASSWORD = "uma's status page password"
#: A model name as long as some providers' are, with no place a browser may break it.
LONG_MODEL = (
    "vendor-" + "x" * 40 + "/an-extremely-long-model-name-without-spaces-v2.5-instruct:free"
)


@dataclass
class Hub:
    stack: Stack
    user_token: str  # uma, role user


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    config = EXAMPLE_CONFIG.read_text() + (
        f'\n[MODEL.{LONG_MODEL}]\nprovider = "anthropic"\n[MODEL.{LONG_MODEL}_END]\n'
    )
    stack = Stack(env={**KEYS, "SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP}, config_text=config)
    try:
        stack.start()
        socket = stack.runtime / "guardian" / "admin.sock"
        run_ctl(socket, "users", "add", "uma", stdin=PASSWORD + "\n").check_returncode()
        issued = run_ctl(socket, "tokens", "issue", "--user", "uma")
        issued.check_returncode()
        yield Hub(stack=stack, user_token=issued.stdout.strip())
    finally:
        stack.cleanup()


def page(hub: Hub, token: str) -> str:
    answer = httpx.get(
        f"{hub.stack.url}/",
        headers={"accept": "text/html", "authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_page_says_who_is_signed_in_and_lists_every_model_and_base_url(hub: Hub) -> None:
    text = page(hub, hub.user_token)
    assert "Signed in as <strong id=user>uma</strong> (role user)" in text
    assert "<button type=button id=logout>Log out</button>" in text
    listed = httpx.get(
        f"{hub.stack.url}/v1/models", headers={"authorization": f"Bearer {hub.user_token}"}
    ).json()["data"]
    assert len(listed) >= 3  # the providers' default models too, not only [MODEL.*]
    shown = re.findall(r"<tr class=(?:in)?active><td>([^<]*)</td>", text)
    for model in listed:
        assert model["id"] in shown, model["id"]
    assert f"<code id=base-v1>{hub.stack.url}/v1</code>" in text
    assert f"<code id=base-api>{hub.stack.url}/api</code>" in text
    admin = page(hub, BOOTSTRAP)
    assert "Signed in as <strong id=user>admin</strong> (role admin)" in admin


def test_the_runtimes_paths_are_shown_to_admins_only(hub: Hub) -> None:
    runtime = str(hub.stack.runtime)
    admin = page(hub, BOOTSTRAP)
    user = page(hub, hub.user_token)
    if "writes confined to" in admin:  # Landlock applied: the rule names the directory
        assert runtime in admin
        assert "writes confined to [a path, shown to admins]" in user
    assert runtime not in user and str(hub.stack.dir) not in user
    assert "<h2>Protections</h2>" in user  # what is in force is still said


def test_paths_are_hidden_in_every_protection_line() -> None:
    protections = SandboxProtections(
        two_uids=False,
        no_new_privs=True,
        landlock_abi=7,
        landlock_rules=("reads confined", "writes confined to /srv/hub/var/sandbox"),
        seccomp=True,
        notes=("cannot open /srv/hub/.env: Permission denied",),
    )
    for_user = protections_html(protections)
    assert "/srv/hub" not in for_user and "TCP connect/bind" not in hide_paths("x")
    assert "cannot open [a path, shown to admins]: Permission denied" in for_user
    assert "/srv/hub/var/sandbox" in protections_html(protections, admin=True)
    # Not paths: a URL, a "connect/bind", a ratio.
    for text in ("http://127.0.0.1:7860/v1", "TCP connect/bind blocked", "1/2"):
        assert hide_paths(text) == text


def test_the_status_json_says_who_the_hub_takes_the_caller_for(hub: Hub) -> None:
    answer = httpx.get(
        f"{hub.stack.url}/",
        headers={"accept": "application/json", "authorization": f"Bearer {hub.user_token}"},
    ).json()
    assert answer["signed_in_as"] == "uma" and answer["role"] == "user"
    assert answer["open_mode"] is False and answer["status"] == "running"
    login = httpx.post(
        f"{hub.stack.url}/auth/login", json={"username": "uma", "password": PASSWORD}
    )
    session = login.cookies["sg_session"]
    with_cookie = httpx.get(
        f"{hub.stack.url}/",
        headers={"accept": "application/json", "cookie": f"sg_session={session}"},
    )
    assert with_cookie.json()["signed_in_as"] == "uma"


def test_open_mode_says_nobody_is_signed_in(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(env=KEYS)
    text = httpx.get(f"{stack.url}/", headers={"accept": "text/html"}).text
    assert "Nobody is signed in (open mode)." in text and "id=logout" not in text
    status = httpx.get(f"{stack.url}/", headers={"accept": "application/json"}).json()
    assert status["open_mode"] is True and status["signed_in_as"] is None


def test_long_model_names_stay_readable_and_log_out_works_in_chromium(hub: Hub) -> None:
    with chromium() as driver:
        driver.set_window_size(900, 900)
        driver.get(f"{hub.stack.url}/")
        driver.find_element(By.ID, "username").send_keys("uma")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.ID, "models"))
        cells = driver.find_elements(By.CSS_SELECTOR, "#models tr td:first-child")
        long_cell = next(c for c in cells if c.text.replace("\n", "") == LONG_MODEL)
        # The whole name is in view: wrapped inside its cell, never cut, never past the page.
        metrics = driver.execute_script(
            "const c = arguments[0], t = document.getElementById('models');"
            "return {cell: c.getBoundingClientRect().right, scroll: c.scrollWidth,"
            " client: c.clientWidth, table: t.getBoundingClientRect().right,"
            " page: document.documentElement.clientWidth,"
            " docScroll: document.documentElement.scrollWidth};",
            long_cell,
        )
        assert metrics["scroll"] <= metrics["client"] + 1, metrics
        assert metrics["table"] <= metrics["page"], metrics
        assert metrics["docScroll"] <= metrics["page"], metrics
        assert driver.find_element(By.ID, "user").text == "uma"
        driver.find_element(By.ID, "logout").click()
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_elements(By.ID, "login"))
        assert not driver.find_elements(By.ID, "logout")
