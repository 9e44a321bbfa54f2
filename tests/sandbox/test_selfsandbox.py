"""Self-sandboxing where the kernel allows it, and serving an inherited listening socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.selfsandbox import landlock_abi
from tests.helpers import ROOT, Stack, base_env, first_healthz, free_port

PROBE = """
import json, socket, sys
from pathlib import Path
from sandbox.selfsandbox import Policy, apply
state, port = Path(sys.argv[1]), int(sys.argv[2])
applied = apply(Policy(readable=(Path("/usr"), Path("/etc/hostname")), writable=(state,)))
result = {"describe": applied.describe()}
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    result["connect"] = "allowed"
except OSError as exc:
    result["connect"] = exc.errno
for name, path in (("inside", state / "x"), ("outside", state.parent / "outside.txt")):
    try:
        path.write_text("x")
        result[name] = "allowed"
    except OSError as exc:
        result[name] = exc.errno
result["read"] = len(Path("/etc/hostname").read_text()) >= 0
try:
    Path("/etc/passwd").read_text()
    result["read_elsewhere"] = "allowed"
except OSError as exc:
    result["read_elsewhere"] = exc.errno
print(json.dumps(result))
"""


def test_landlock_blocks_outbound_connects_and_writes_outside_the_state_dir(
    scratch: Callable[[str], Path],
) -> None:
    if landlock_abi() < 4:
        pytest.skip(f"kernel Landlock ABI {landlock_abi()} < 4: TCP rules unavailable here")
    workdir = scratch("sealgate-landlock-")
    state = workdir / "state"
    state.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(state), str(listener.getsockname()[1])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    finally:
        listener.close()
    result = json.loads(out)
    assert result["connect"] == 13, result  # EACCES: no outbound TCP at all
    assert result["inside"] == "allowed" and result["outside"] == 13
    assert result["read"] is True
    assert result["read_elsewhere"] == 13  # reads only beneath the policy's paths
    assert "TCP connect/bind blocked" in result["describe"]


def test_the_real_sandbox_reports_what_it_applied(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    logs = stack.logs()
    assert "self-sandboxing: no_new_privs on" in logs
    if landlock_abi() >= 4:
        assert "TCP connect/bind blocked" in logs
    status = Path(f"/proc/{stack.pid_of('sandbox')}/status").read_text()
    assert "NoNewPrivs:\t1" in status


def test_an_inherited_listening_socket_is_served(scratch: Callable[[str], Path]) -> None:
    workdir = scratch("sealgate-socket-")
    for sub in ("guardian", "run", "sandbox"):
        (workdir / "var" / sub).mkdir(parents=True)
    config = workdir / ".pyfun"
    config.write_text((ROOT / ".pyfun").read_text())
    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    listener.listen()
    port = listener.getsockname()[1]
    env = base_env(
        {
            "HUB_CONFIG": str(config),
            "HUB_RUNTIME_DIR": str(workdir / "var"),
            "HUB_PORT": "1",
            "PYTHONPATH": str(ROOT),
            "LISTEN_FDS": "1",
        }
    )
    # As systemd does: the socket at fd 3 and LISTEN_PID naming the service's own pid.
    command = f"exec 3<&{listener.fileno()}; LISTEN_PID=$$ exec {sys.executable} -m sandbox"
    process = subprocess.Popen(
        ["bash", "-c", command],
        env=env,
        pass_fds=(listener.fileno(),),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    listener.close()
    try:
        response = first_healthz(f"http://127.0.0.1:{port}", process)
        # no guardian runs here: the sandbox answers, and says the guardian is unavailable
        assert response.status_code == 503 and "guardian" in response.json()
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "serving the inherited socket" in output


LOWER_ABI_PROBE = """
import json, socket, sys
from pathlib import Path
from sandbox.selfsandbox import Policy, apply
state, port, abstract, abi = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
applied = apply(Policy(readable=(Path("/usr"),), writable=(state,)), max_abi=abi)
result = {"describe": applied.describe(), "abi": applied.landlock_abi}
for name, family, address in (
    ("tcp", socket.AF_INET, ("127.0.0.1", port)),
    ("abstract", socket.AF_UNIX, "\\0" + abstract),
):
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(address)
            result[name] = "allowed"
        except OSError as exc:
            result[name] = exc.errno
print(json.dumps(result))
"""


@pytest.mark.parametrize("abi", [0, 3, 5, 6])
def test_a_lower_landlock_abi_applies_less_and_says_so(
    abi: int, scratch: Callable[[str], Path]
) -> None:
    if landlock_abi() < max(abi, 6):
        pytest.skip(f"kernel Landlock ABI {landlock_abi()} cannot show ABI {abi} against 6")
    workdir = scratch("sealgate-abi-")
    state = workdir / "state"
    state.mkdir()
    name = f"sealgate-test-abi-{os.getpid()}-{abi}"
    with socket.socket() as listener, socket.socket(socket.AF_UNIX) as abstract:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        abstract.bind("\0" + name)
        abstract.listen()
        port = str(listener.getsockname()[1])
        out = subprocess.run(
            [sys.executable, "-c", LOWER_ABI_PROBE, str(state), port, name, str(abi)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    result = json.loads(out)
    assert result["abi"] == abi
    if abi == 0:
        assert "landlock unavailable" in result["describe"]
    if abi < 4:
        assert result["tcp"] == "allowed"
    else:
        assert result["tcp"] == 13
    if abi < 6:
        assert result["abstract"] == "allowed"
        if abi:
            assert "NOT scoped" in result["describe"]
    else:
        assert result["abstract"] == 1  # EPERM: scoped
