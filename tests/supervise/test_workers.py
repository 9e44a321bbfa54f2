"""`HUB_SANDBOX_WORKERS`: parsed and bounded in one place, refused before anything starts
when it cannot work, and turned into that many sandbox children; in process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from protocol.runtime import RuntimeLayout
from protocol.workers import MAX_WORKERS, WorkersError, sandbox_workers
from sandbox.main import listening_socket
from supervise.children import build_children
from supervise.preflight import check_workers
from supervise.users import Identity

GUARDIAN = Identity("hub-guardian", 901, 901)
SANDBOX = Identity("hub-sandbox", 902, 902)


@pytest.mark.parametrize(
    ("raw", "workers"), [(None, 1), ("", 1), (" 2 ", 2), ("1", 1), (str(MAX_WORKERS), 64)]
)
def test_the_number_of_workers_defaults_to_one(raw: str | None, workers: int) -> None:
    assert sandbox_workers({} if raw is None else {"HUB_SANDBOX_WORKERS": raw}) == workers


@pytest.mark.parametrize("raw", ["0", "65", "-1", "two", "1.5", "²", "3\x1b]52;c;x\x07", "9" * 40])
def test_a_bad_number_of_workers_is_a_clear_error(raw: str) -> None:
    with pytest.raises(WorkersError, match=r"HUB_SANDBOX_WORKERS=.*from 1 to 64") as caught:
        sandbox_workers({"HUB_SANDBOX_WORKERS": raw})
    assert "\x1b" not in str(caught.value) and len(str(caught.value)) < 200


def test_more_workers_than_guardian_links_or_port_zero_are_refused() -> None:
    assert check_workers(7860, 16, {"HUB_SANDBOX_WORKERS": "16"}) == 16
    with pytest.raises(
        WorkersError, match="max_sandbox_connections is 16; raise it to at least 17"
    ):
        check_workers(7860, 16, {"HUB_SANDBOX_WORKERS": "17"})
    with pytest.raises(WorkersError, match="needs a fixed port"):
        check_workers(0, 16, {"HUB_SANDBOX_WORKERS": "2"})
    assert check_workers(0, 16, {}) == 1


def test_each_worker_is_a_sandbox_child_of_its_own_with_the_same_environment(
    tmp_path: Path,
) -> None:
    environ = {"ANTHROPIC_API_KEY": "sk-ant-secret", "HUB_SANDBOX_WORKERS": "3"}
    layout = RuntimeLayout.from_environ({"HUB_RUNTIME_DIR": str(tmp_path)})
    guardian, *sandboxes = build_children(
        environ,
        config_path=tmp_path / ".pyfun",
        env_file=tmp_path / ".env",
        layout=layout,
        guardian_id=GUARDIAN,
        sandbox_id=SANDBOX,
    )
    assert guardian.name == "guardian"
    assert [child.name for child in sandboxes] == ["sandbox-1", "sandbox-2", "sandbox-3"]
    assert sandboxes[0].env is not sandboxes[1].env  # none shares another's mapping
    for child in sandboxes:
        assert child.identity == SANDBOX and child.drop_privileges
        assert child.argv == sandboxes[0].argv and child.argv[1:3] == ["-I", "-S"]
        assert child.env == sandboxes[0].env
        assert "ANTHROPIC_API_KEY" not in child.env
        assert child.env["HUB_SANDBOX_WORKERS"] == "3"


def test_workers_share_the_port_and_a_single_sandbox_does_not() -> None:
    first = listening_socket("127.0.0.1", 0, {}, workers=2)
    port = first.getsockname()[1]
    try:
        second = listening_socket("127.0.0.1", port, {}, workers=2)
        second.close()
        with pytest.raises(OSError):  # one sandbox keeps the port to itself
            listening_socket("127.0.0.1", port, {}, workers=1).close()
    finally:
        first.close()
    alone = listening_socket("127.0.0.1", 0, {})
    try:
        assert not alone.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    finally:
        alone.close()
