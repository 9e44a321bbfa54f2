"""The published admin address (one uid): what the guardian writes and what the CLI accepts."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from protocol.adminaddr import (
    NAME_PREFIX,
    address_file,
    connect_admin,
    new_name,
    publish,
    read_published,
    start_time,
)


def test_names_are_random_and_abstract() -> None:
    names = {new_name() for _ in range(100)}
    assert len(names) == 100
    assert all(
        n.startswith("\0" + NAME_PREFIX) and len(n) == 1 + len(NAME_PREFIX) + 32 for n in names
    )


def test_publish_then_connect_to_ourselves(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    name = new_name()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen()
        published = publish(path, name)
        assert published.pid == os.getpid() and published.start == start_time(os.getpid())
        assert stat.S_IMODE(address_file(path).stat().st_mode) == 0o600
        assert read_published(path) == published
        with connect_admin(path) as sock:  # the listener is this very process
            assert sock.getpeername() == name.encode()
    with pytest.raises(FileNotFoundError):  # published, but nothing listens any more
        connect_admin(path)


def test_a_stale_start_time_is_an_impostor(tmp_path: Path) -> None:
    """Same pid, another start time: a recycled pid, not the guardian that published."""
    path = tmp_path / "admin.sock"
    name = new_name()
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen()
        record = {
            "address": "@" + name[1:],
            "pid": os.getpid(),
            "start": start_time(os.getpid()) - 1,
        }
        address_file(path).write_text(json.dumps(record))
        address_file(path).chmod(0o600)
        with pytest.raises(PermissionError, match="not by the guardian that published it"):
            connect_admin(path)


def test_no_address_published_means_no_guardian(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no admin socket"):
        connect_admin(tmp_path / "admin.sock")
