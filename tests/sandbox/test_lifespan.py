"""The sandbox's lifespan closes what it opened however it ends (issue 25): the hub state
database and the guardian link are released on one exit stack, also when the app stops on
an error."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sandbox.app import build_app
from sandbox.guardian_link import GuardianLink
from sandbox.settings import SandboxSettings, load_settings

HOSTS = ["127.0.0.1"]


def settings_in(tmp_path: Path) -> SandboxSettings:
    config = tmp_path / ".pyfun"
    config.write_text("")
    runtime = tmp_path / "var"
    for directory in ("sandbox", "run", "guardian"):
        (runtime / directory).mkdir(parents=True)
    return load_settings({"HUB_CONFIG": str(config), "HUB_RUNTIME_DIR": str(runtime)})


def open_files_under(directory: Path) -> list[str]:
    """Files of `directory` this process holds open (from /proc/self/fd)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def link_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "rpc-client" and not t.done()]


@pytest.mark.parametrize("ends_with_an_error", [False, True])
async def test_the_lifespan_releases_what_it_opened(
    tmp_path: Path, ends_with_an_error: bool
) -> None:
    settings = settings_in(tmp_path)
    link = GuardianLink(settings.layout.guardian_socket, max_frame_size=1 << 20, listen_hosts=HOSTS)
    app = build_app(settings, link, HOSTS)
    try:
        async with app.router.lifespan_context(app):
            assert open_files_under(tmp_path / "var" / "sandbox")  # the hub state is open
            assert link_tasks()  # the link is trying to reach the guardian
            if ends_with_an_error:
                raise RuntimeError("the server stopped on an error")
    except* RuntimeError:  # MCP's lifespan runs a task group, which wraps the error in a group
        assert ends_with_an_error
    await asyncio.sleep(0.05)  # aiosqlite's thread closes the file after the await returns
    assert open_files_under(tmp_path / "var" / "sandbox") == []
    assert link_tasks() == []
