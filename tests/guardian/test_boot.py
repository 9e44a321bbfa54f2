"""How the guardian refuses to boot: one clear line, exit 78, never a traceback or a loop."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping

import pytest

from tests.helpers import EXAMPLE_CONFIG, PYTHON, ROOT, GuardianProcess

EX_CONFIG = 78


@pytest.fixture
def unstarted() -> Iterator[list[GuardianProcess]]:
    made: list[GuardianProcess] = []
    yield made
    for guardian in made:
        guardian.stop()


def boot(
    made: list[GuardianProcess],
    config_text: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a guardian to its exit (it must refuse to boot)."""
    guardian = GuardianProcess(config_text, env)
    made.append(guardian)
    return subprocess.run(
        [PYTHON, "-m", "guardian"],
        env=guardian.env,
        cwd=guardian.dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == EX_CONFIG, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "cannot start" in line]
    assert len(errors) == 1 and fragment in errors[0], output


BAD_LIMITS = EXAMPLE_CONFIG.read_text().replace(
    '# max_failed_logins    = "5"', 'max_failed_logins = "five"'
)


def test_a_bad_limit_value_stops_the_boot_with_file_and_line(
    unstarted: list[GuardianProcess],
) -> None:
    line = BAD_LIMITS.splitlines().index('max_failed_logins = "five"') + 1
    result = boot(unstarted, BAD_LIMITS)
    assert_one_clear_line(result, f".pyfun:{line}: max_failed_logins must be a whole number")


def test_config_check_reports_a_bad_limit_value(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bad.pyfun"
    path.write_text('[DB_SYNC]\ntool_cache_ttl_sec = "an hour"\n[DB_SYNC_END]\n')
    result = subprocess.run(
        [PYTHON, "-m", "guardian.ctl", "--socket", "/nonexistent", "config", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"{path}:2: tool_cache_ttl_sec must be a number" in result.stderr
    assert "Traceback" not in result.stderr
