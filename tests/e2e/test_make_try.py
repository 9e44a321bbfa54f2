"""`make try`: the fake providers and the hub started by one command and stopped together
(issue 24, item 7); the fakes' port is one setting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.fake_provider import DEFAULT_PORT, pyfun_for
from protocol.pyfun import parse
from tests.helpers import PYTHON, ROOT, Stack, children_of, free_port, wait_for_healthz

#: The test run's venv is already set up: make must not rebuild it (`-o`: treat as old).
MAKE_TRY = ["make", "--no-print-directory", "-o", ".venv/.dev", "-o", ".venv/.runtime", "try"]


def test_one_setting_moves_every_base_url() -> None:
    for port in (DEFAULT_PORT, 9123):
        config = parse(pyfun_for(port), "fake.pyfun")
        urls = [
            p.base_url for p in (*config.llm_providers.values(), *config.search_providers.values())
        ]
        assert len(urls) == 5
        assert all(url.startswith(f"http://127.0.0.1:{port}/") for url in urls), urls


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = Stack(config_text="")  # only its directories, port and environment are used
    try:
        yield stack
    finally:
        stack.cleanup()


def descendants(pid: int) -> set[int]:
    found = set()
    for child in children_of(pid):
        found |= {child, *descendants(child)}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(stack: Stack, command: list[str]) -> subprocess.Popen[bytes]:
    log = stack.log_path.open("ab")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    stack.process = process
    wait_for_healthz(stack.url, process, stack.logs, "make try")
    return process


def ask(stack: Stack) -> str:
    reply = httpx.post(
        f"{stack.url}/api",
        json={"tool": "llm_complete", "params": {"prompt": "Hi", "provider": "anthropic"}},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def test_make_try_starts_both_and_ctrl_c_stops_both(stack: Stack) -> None:
    fake_port = free_port()
    stack.env["FAKE_PORT"] = str(fake_port)
    make = start(stack, MAKE_TRY)
    assert ask(stack).startswith("(fake Anthropic)")
    assert listening(fake_port)
    everything = descendants(make.pid)
    assert len(everything) >= 5  # try.py, the fakes, the supervisor, the guardian, the sandbox
    config = next(
        Path(line.rsplit(" ", 1)[1])
        for line in stack.logs().splitlines()
        if line.startswith("try: fake providers on")
    )
    assert f"127.0.0.1:{fake_port}/" in config.read_text()
    os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    make.wait(30)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in everything) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in everything if alive(pid)], stack.logs()
    assert not listening(fake_port) and not listening(stack.port)
    assert not config.parent.exists()
    assert "supervisor exiting with status 0" in stack.logs()


def test_sigterm_to_the_command_alone_stops_both(stack: Stack) -> None:
    stack.env["FAKE_PORT"] = "0"  # ignored by try.py itself; --port 0 picks a free port
    command = start(stack, [PYTHON, str(ROOT / "bench" / "try.py"), "--port", "0"])
    assert ask(stack).startswith("(fake Anthropic)")
    fake_port = int(stack.logs().split("try: fake providers on 127.0.0.1:")[1].split(",")[0])
    assert listening(fake_port)
    command.send_signal(signal.SIGTERM)  # only the command, as `kill PID` or systemd would
    assert command.wait(30) == 0
    assert not listening(fake_port) and not listening(stack.port)


def test_a_taken_port_stops_at_once_and_says_how_to_pick_another() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [PYTHON, str(ROOT / "bench" / "try.py"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "make try FAKE_PORT=N" in done.stderr and "Traceback" not in done.stderr
