"""Terminal escapes from outside: a login user name or a registered client's `client_name`,
sent without any credential, must reach the operator's terminal (`sealgate-ctl audit tail`,
`oauth clients list`) and the logs escaped, never as ESC, CR, LF or OSC sequences that forge
or erase lines or write the clipboard; `--json` keeps the exact text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from protocol.logsafety import EscapeArgs
from protocol.printable import printable
from tests.e2e.oauth_person import REDIRECT_URI
from tests.helpers import Stack, run_ctl
from tests.security.common import admin_socket, issue_token

#: Sets the clipboard (OSC 52), returns the carriage, writes a forged audit line and erases
#: what follows on the line.
FORGED = "2026-01-01 00:00  root  login  ok"
EVIL = f"eve\x1b]52;c;ZXZpbA==\x07\r\n{FORGED}\x1b[2K\x9b31m\u202e"
RAW = ("\x1b", "\r", "\x07", "\x9b", "\u202e")


# unit ----------------------------------------------------------------------------------------
def test_printable_shows_every_control_and_format_character_escaped() -> None:
    shown = printable(EVIL)
    assert not any(c in shown for c in (*RAW, "\n"))
    assert shown.startswith("eve\\x1b]52;c;ZXZpbA==\\x07\\x0d\\x0a2026")
    assert "\\u202e" in shown and "\\x9b" in shown


def test_printable_leaves_ordinary_text_alone() -> None:
    for text in ("ada", "Zoë Ångström", "名前 テスト", "a\\x1b stays as typed", "tab-free"):
        assert printable(text) == text
    assert printable("line one\nline two", keep_newlines=True) == "line one\nline two"
    assert printable("one\r\ntwo", keep_newlines=True) == "one\\x0d\ntwo"


def test_the_status_page_shows_names_escaped_then_html_escaped() -> None:
    from sandbox.pages import _cell

    shown = _cell(EVIL)
    assert not any(c in shown for c in (*RAW, "\n"))
    assert shown.startswith("eve\\x1b]52;c;ZXZpbA==\\x07")
    assert _cell("<b>") == "&lt;b&gt;"


def test_log_arguments_are_escaped_but_the_format_string_is_not() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(EscapeArgs())
    log = logging.getLogger("sealgate.test.escapes")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("login refused for %s (%d tries)", EVIL, 3)
        log.warning("by name %(user)s", {"user": EVIL})
        log.warning("error: %s", ValueError(EVIL))
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert output.count("\n") == 3  # one line per record
    assert not any(c in output for c in RAW)
    assert "(3 tries)" in output


def strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# the whole stack -------------------------------------------------------------------------------
def test_names_from_outside_reach_the_operator_escaped(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory()
    issue_token(stack, "ada")  # a user exists: auth is on and logins are audited
    refused = httpx.post(
        f"{stack.url}/auth/login", json={"username": EVIL, "password": "x" * 12}, timeout=30
    )
    assert refused.status_code in (400, 401), refused.text
    registered = httpx.post(
        f"{stack.url}/oauth/register",
        json={"client_name": EVIL, "redirect_uris": [REDIRECT_URI]},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text

    for command in (("audit", "tail"), ("oauth", "clients", "list")):
        shown = run_ctl(admin_socket(stack), *command)
        assert shown.returncode == 0, shown.stderr
        assert "eve\\x1b]52" in shown.stdout, shown.stdout  # there, and visibly escaped
        assert not any(c in shown.stdout for c in RAW), (command, shown.stdout)
        assert not any(line.startswith(FORGED) for line in shown.stdout.splitlines())

        exact = run_ctl(admin_socket(stack), *command, "--json")
        assert exact.returncode == 0, exact.stderr
        assert any(EVIL in value for value in strings(json.loads(exact.stdout)))

    assert not any(c in stack.logs() for c in RAW)
