"""The supervisor's restart policy and the children's command lines and environments, in
process: no child is started."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from protocol.runtime import RuntimeLayout
from supervise.children import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    HEALTHY_RUN_S,
    MAX_FAILED_STARTS,
    SANDBOX_HOME,
    Child,
    State,
    build_children,
    schedule_restart,
)
from supervise.leftovers import descendants
from supervise.outcomes import EX_CONFIG
from supervise.signals import SignalQueue
from supervise.users import Identity

GUARDIAN = Identity("hub-guardian", 901, 901)
SANDBOX = Identity("hub-sandbox", 902, 902)


def a_child() -> Child:
    return Child("sandbox", ["python"], {}, SANDBOX, True, state=State.RUNNING)


def test_the_backoff_grows_then_stays_at_its_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("supervise.children.time.monotonic", lambda: 1000.0)
    child = a_child()
    waits = []
    for _ in range(MAX_FAILED_STARTS):
        schedule_restart(child, -signal.SIGKILL, 0.5)
        waits.append(round(child.restart_at - 1000.0, 6))
    assert waits[:3] == [BACKOFF_INITIAL_S, BACKOFF_INITIAL_S * 2, BACKOFF_INITIAL_S * 4]
    assert waits[-1] == BACKOFF_MAX_S
    assert waits == sorted(waits)


def test_a_healthy_run_resets_the_count_of_failed_starts() -> None:
    child = a_child()
    for _ in range(MAX_FAILED_STARTS):
        schedule_restart(child, 1, 0.5)
    schedule_restart(child, 1, HEALTHY_RUN_S)
    assert (child.state, child.failed_starts) == (State.BACKOFF, 1)


def test_too_many_failed_starts_give_up() -> None:
    child = a_child()
    for _ in range(MAX_FAILED_STARTS + 1):
        schedule_restart(child, 1, 0.5)
    assert child.state is State.FATAL
    assert child.failed_starts == MAX_FAILED_STARTS + 1


def test_a_child_that_cannot_boot_is_not_restarted() -> None:
    child = a_child()
    schedule_restart(child, EX_CONFIG, 0.5)
    assert (child.state, child.failed_starts) == (State.FATAL, 0)


def test_the_sandbox_gets_allowlisted_names_only_and_starts_without_site(
    tmp_path: Path,
) -> None:
    environ = {
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "HUB_PORT": "8123",
        "PATH": "/usr/bin",
        "PYTHONPATH": "/tmp/evil",
        "LISTEN_FDS": "1",
    }
    layout = RuntimeLayout.from_environ({"HUB_RUNTIME_DIR": str(tmp_path)})
    guardian, sandbox = build_children(
        environ,
        config_path=tmp_path / ".pyfun",
        env_file=tmp_path / ".env",
        layout=layout,
        guardian_id=GUARDIAN,
        sandbox_id=SANDBOX,
    )
    assert (guardian.name, sandbox.name) == ("guardian", "sandbox")
    assert guardian.drop_privileges and sandbox.drop_privileges
    assert guardian.argv[1:2] == ["-I"] and guardian.argv[-1].endswith("guardian/__main__.py")
    assert sandbox.argv[1:3] == ["-I", "-S"] and sandbox.argv[-1].endswith("sandbox/__main__.py")
    assert guardian.env["ANTHROPIC_API_KEY"] == "sk-ant-secret"
    assert guardian.env["HUB_SANDBOX_UID"] == str(SANDBOX.uid)
    assert "ANTHROPIC_API_KEY" not in sandbox.env and "LISTEN_FDS" not in sandbox.env
    assert not any(name.startswith("PYTHON") for env in (guardian.env, sandbox.env) for name in env)
    assert sandbox.env["HUB_PORT"] == "8123"
    assert (sandbox.env["HOME"], sandbox.env["USER"]) == (SANDBOX_HOME, SANDBOX.name)
    assert guardian.env["HOME"] == str(layout.guardian_dir)


def test_one_uid_drops_no_privileges(tmp_path: Path) -> None:
    layout = RuntimeLayout.from_environ({"HUB_RUNTIME_DIR": str(tmp_path)})
    children = build_children(
        {},
        config_path=tmp_path / ".pyfun",
        env_file=tmp_path / ".env",
        layout=layout,
        guardian_id=GUARDIAN,
        sandbox_id=GUARDIAN,
    )
    assert not any(child.drop_privileges for child in children)


def test_the_signal_queue_asks_a_stop_for_sigterm_and_sigint_only() -> None:
    queue = SignalQueue()
    queue.pending.extend([signal.SIGHUP, signal.SIGCHLD])
    assert not queue.stop_asked()
    queue.pending.append(signal.SIGTERM)
    assert queue.stop_asked()
    assert queue.drain() == [signal.SIGHUP, signal.SIGCHLD, signal.SIGTERM]
    assert queue.pending == [] and not queue.stop_asked()


def test_descendants_follow_the_tree_and_nothing_else() -> None:
    table = {10: (1, "S"), 11: (10, "S"), 12: (11, "Z"), 20: (1, "S"), 21: (20, "S")}
    assert descendants(10, table) == {11, 12}
    assert descendants(1, table) == {10, 11, 12, 20, 21}
    assert descendants(12, table) == set()
