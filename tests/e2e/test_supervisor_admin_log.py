"""The supervisor logs where the guardian's admin socket really is (issue 24 item 7): with
one uid there is no `admin.sock` file (the guardian listens on an abstract name it publishes
in `admin.addr`), and the log says that name and that file, never the missing path; with two
uids it names the socket file, which exists."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from tests.helpers import Stack, two_uid_possible

ANSWERS = re.compile(r"guardian answers hello on (.*)")


def said(stack: Stack) -> str:
    found = ANSWERS.search(stack.logs())
    assert found, stack.logs()
    return found.group(1)


def test_one_uid_logs_the_published_abstract_address(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(single_uid=True)
    socket_file = stack.runtime / "guardian" / "admin.sock"
    published = stack.runtime / "guardian" / "admin.addr"
    assert not socket_file.exists() and published.is_file()
    address = json.loads(published.read_text())["address"]
    line = said(stack)
    assert str(socket_file) not in line, line
    assert f"the abstract address {address}" in line and str(published) in line, line


def test_two_uids_log_the_socket_file(stack_factory: Callable[..., Stack]) -> None:
    why = two_uid_possible()
    if why is not None:
        pytest.skip(why)
    stack = stack_factory(single_uid=False)
    socket_file = stack.runtime / "guardian" / "admin.sock"
    assert socket_file.is_socket()
    assert said(stack).strip() == str(socket_file)
