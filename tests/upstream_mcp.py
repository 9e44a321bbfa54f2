"""Stacks with upstream MCP servers behind them (docs/UPSTREAM_MCP.md), for e2e and security
tests: the small fastmcp upstream of `tests/fakes/upstream_mcp.py` as a real process over
Streamable HTTP and over stdio, a server that never answers, and the canary credential."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import EXAMPLE_CONFIG, PYTHON, ROOT, Stack, base_env, free_port, make_workdir

#: The upstream's credential: in the guardian's env file only; never seen by the sandbox.
CANARY = "sg-canary-upstream-9d41c7e02b6f48a5"
FAKE = ROOT / "tests" / "fakes" / "upstream_mcp.py"
KEY_VARIABLE = "FAKE_UPSTREAM_KEY"
DESCRIPTION_VARIABLE = "UPSTREAM_DESCRIPTION_FILE"


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def http_upstream(description_file: Path) -> Iterator[int]:
    """The fake upstream over Streamable HTTP on 127.0.0.1; yields its port."""
    port = free_port()
    env = base_env({KEY_VARIABLE: CANARY, DESCRIPTION_VARIABLE: str(description_file)})
    process = subprocess.Popen(
        [PYTHON, str(FAKE), "http", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def config_text(http_port: int, dead_port: int, described: Path, extra: str = "") -> str:
    """The example configuration plus three upstreams: `web` (HTTP, bearer key), `local`
    (stdio, the key and the description file in its environment, that file's directory
    readable under its Landlock rules) and `dead` (a port on
    which a listener accepts and never answers)."""
    return (
        EXAMPLE_CONFIG.read_text()
        + f"""
[MCP_SERVERS]
[MCP_SERVER.web]
url = "http://127.0.0.1:{http_port}/mcp"
allow_insecure = "true"
env_key = "{KEY_VARIABLE}"
prefix = "web_"
timeout_sec = "3"
[MCP_SERVER.web_END]
[MCP_SERVER.local]
command = "{PYTHON} {FAKE} stdio"
env_key = "{KEY_VARIABLE}"
env = "{DESCRIPTION_VARIABLE}"
read_paths = "{described.parent}"
prefix = "local_"
timeout_sec = "3"
[MCP_SERVER.local_END]
[MCP_SERVER.dead]
url = "http://127.0.0.1:{dead_port}/mcp"
allow_insecure = "true"
prefix = "dead_"
timeout_sec = "2"
connect_timeout_sec = "1"
[MCP_SERVER.dead_END]
{extra}[MCP_SERVERS_END]
"""
    )


def write_env_file(stack_dir: Path, description_file: Path) -> None:
    """The guardian's env file: the canary and the description file's path, readable by
    the guardian's user only (created here when the stack runs with two uids)."""
    path = stack_dir / ".env"
    path.write_text(f"{KEY_VARIABLE}={CANARY}\n{DESCRIPTION_VARIABLE}={description_file}\n")
    path.chmod(0o600)
    if os.geteuid() == 0:
        from supervise.users import ensure_user

        guardian = ensure_user("hub-guardian")
        os.chown(path, guardian.uid, guardian.gid)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung upstream)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@contextlib.contextmanager
def description_file() -> Iterator[Path]:
    """The file `echo`'s description is read from (readable by the guardian's user)."""
    directory = make_workdir("sealgate-upstream-")
    path = directory / "echo-description.txt"
    path.write_text("Echo the text back.\n")
    path.chmod(0o644)
    try:
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def start_stack(stack_factory: object, http_port: int, dead_port: int, described: Path) -> Stack:
    factory = stack_factory  # a `stack_factory` fixture's function
    return factory(  # type: ignore[operator,no-any-return]
        config_text=config_text(http_port, dead_port, described),
        before_start=lambda stack: write_env_file(stack.dir, described),
    )
