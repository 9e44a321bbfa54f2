"""How the supervisor says where the admin socket is: the file when there is one, else the
abstract name the guardian published in `admin.addr` (one uid), never a path that is not
there. In process, with files only."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from supervise.hello import admin_address


def test_the_socket_file_when_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(path))
        assert admin_address(path) == str(path)
    finally:
        listener.close()


def test_the_published_abstract_name_without_a_file(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    published = tmp_path / "admin.addr"
    published.write_text(
        json.dumps({"address": "@sealgate-admin-" + "ab" * 16, "pid": os.getpid(), "start": 1})
    )
    published.chmod(0o600)
    said = admin_address(path)
    assert said.startswith("the abstract address @sealgate-admin-abab")
    assert str(published) in said and str(path) not in said


def test_nothing_published_says_so(tmp_path: Path) -> None:
    said = admin_address(tmp_path / "admin.sock")
    assert said.startswith("an abstract address (one uid: no socket file;")
    assert "admin.addr" in said
