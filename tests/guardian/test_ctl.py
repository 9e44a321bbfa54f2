"""The operator CLI as a new user runs it (issue 15, items 1-3): the checkout's own
`./sealgate-ctl` from any directory, `--json` anywhere with JSON errors, and a quiet exit
when the reader of its output goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardian import ctl
from tests.helpers import ROOT, GuardianProcess, base_env

WRAPPER = ROOT / "sealgate-ctl"


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path = Path("/"), **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WRAPPER), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=base_env(env),
        timeout=60,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def test_the_checkouts_wrapper_runs_from_any_directory(guardian: GuardianProcess) -> None:
    done = run("ping", env={"HUB_RUNTIME_DIR": str(guardian.runtime)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pong: guardian")


def test_the_socket_defaults_to_the_checkouts_runtime_dir_not_the_cwd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HUB_RUNTIME_DIR", raising=False)
    monkeypatch.chdir("/tmp")
    assert ctl.default_socket() == ROOT / "var" / "guardian" / "admin.sock"
    done = run("--json", "ping", cwd=Path("/tmp"))
    # Whether or not a `make run` stack is up in this checkout, it looked there, not in /tmp.
    if done.returncode != 0:
        assert str(ROOT / "var" / "guardian") in json.loads(done.stdout)["error"]["message"]


def test_installed_with_pip_the_socket_is_under_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No checkout around the code (site-packages): where `sealgate` keeps var/, the cwd."""
    monkeypatch.delenv("HUB_RUNTIME_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    site_packages = tmp_path / "lib" / "site-packages"
    (site_packages / "guardian").mkdir(parents=True)
    (site_packages / "supervisor.py").write_text("")
    assert ctl.default_socket(site_packages) == tmp_path / "var" / "guardian" / "admin.sock"


def test_json_is_accepted_after_the_subcommand(guardian: GuardianProcess) -> None:
    env = {"HUB_RUNTIME_DIR": str(guardian.runtime)}
    for args in (("status", "--json"), ("--json", "status"), ("users", "list", "--json")):
        done = run(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        json.loads(done.stdout)


def test_with_json_errors_are_json_on_stdout_with_the_same_exit_codes(
    guardian: GuardianProcess,
) -> None:
    env = {"HUB_RUNTIME_DIR": str(guardian.runtime)}
    cases = [
        (("users", "lock", "nobody", "--json"), 1, "not_found"),
        (("users", "frobnicate", "--json"), 2, "usage"),
        (("--json", "tokens", "issue", "--user", "admin", "--expires", "soon"), 2, "usage"),
        (("--json", "--socket", "/nonexistent/a.sock", "ping"), 3, "unreachable"),
    ]
    for args, code, error in cases:
        done = run(*args, env=env)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        body = json.loads(done.stdout)
        assert body["error"]["code"] == error and body["error"]["message"], body
        assert done.stderr == "", done.stderr
    plain = run("users", "frobnicate", env=env)
    assert plain.returncode == 2 and plain.stdout == "" and "sealgate-ctl:" in plain.stderr


def test_a_closed_pipe_ends_the_output_quietly(guardian: GuardianProcess) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    try:
        done = subprocess.run(
            [sys.executable, "-m", "guardian.ctl", "--json", "providers"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=base_env({"HUB_RUNTIME_DIR": str(guardian.runtime)}),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr
    assert done.returncode == 0


def test_an_upstreams_unavailability_is_a_failure_not_an_unreachable_guardian(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 3 is for a guardian the CLI cannot reach; a dead upstream the guardian reports
    (`unavailable` with `data.upstream`) is exit 1, said as such, the server named in JSON."""
    from protocol.errors import Unavailable, UpstreamUnavailable

    async def upstream_down(args: object) -> int:
        raise UpstreamUnavailable.of("dead", "upstream MCP server 'dead' is not connected")

    async def guardian_down(args: object) -> int:
        raise Unavailable("guardian unavailable: connection refused")

    monkeypatch.setattr(ctl, "run", upstream_down)
    assert ctl.main(["mcp", "diff", "dead"]) == ctl.EXIT_FAILED
    assert "unavailable: upstream MCP server 'dead'" in capsys.readouterr().err
    assert ctl.main(["mcp", "diff", "dead", "--json"]) == ctl.EXIT_FAILED
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "unavailable" and error["data"] == {"upstream": "dead"}
    monkeypatch.setattr(ctl, "run", guardian_down)
    assert ctl.main(["mcp", "diff", "dead"]) == ctl.EXIT_UNREACHABLE
