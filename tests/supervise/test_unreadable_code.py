"""What the supervisor says when a service user cannot reach the interpreter or the code (a
checkout under a 0700 home): the directory in the way, with its mode and owner, which user,
and what to change. In process, by stat alone: no user is switched to."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervise.users import Identity, barrier, unreadable_code

NOBODY = Identity("nobody", 65534, 65534)


@pytest.fixture
def home() -> Iterator[Path]:
    """An open directory holding a 0700 home with a file in it."""
    with tempfile.TemporaryDirectory(prefix="sealgate-home-") as top:
        os.chmod(top, 0o755)
        closed = Path(top) / "root-home"
        (closed / "checkout" / "bin").mkdir(parents=True)
        (closed / "checkout" / "bin" / "python").write_text("")
        closed.chmod(0o700)
        yield closed


def test_the_barrier_is_the_closed_directory_on_the_way(home: Path) -> None:
    python = home / "checkout" / "bin" / "python"
    assert barrier(python, NOBODY, 0o4) == home
    home.chmod(0o711)
    assert barrier(python, NOBODY, 0o4) is None
    python.chmod(0o600)
    assert barrier(python, NOBODY, 0o4) == python


def test_the_refusal_names_the_user_the_directory_and_the_change(home: Path) -> None:
    refusal = str(unreadable_code(NOBODY, str(home / "checkout" / "bin" / "python"), "denied"))
    assert "user nobody (uid 65534) cannot run" in refusal
    assert f"may not pass through {home} (mode 0700, owner " in refusal
    assert f"chmod o+x {home}" in refusal and "/opt/sealgate" in refusal
    assert "HUB_SINGLE_UID=1" in refusal
