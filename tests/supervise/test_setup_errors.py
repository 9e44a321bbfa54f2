"""An unexpected OSError while the supervisor sets up says which step it came from, not
always "the runtime directory"."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from supervise import arbiter
from supervise.arbiter import Supervisor


def test_an_oserror_names_the_step_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / ".pyfun"
    config.write_text("")
    supervisor = Supervisor(
        {
            "HUB_CONFIG": str(config),
            "HUB_RUNTIME_DIR": str(tmp_path / "var"),
            "HUB_ENV_FILE": str(tmp_path / "none.env"),
            "HUB_SINGLE_UID": "1",
        }
    )

    def unreadable(*_: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "secret"))

    monkeypatch.setattr(arbiter, "check_secret_files", unreadable)
    with caplog.at_level(logging.ERROR):
        assert supervisor.run() == arbiter.EX_FAILED
    assert "cannot start: checking the secret files: [Errno 13] Permission denied" in caplog.text
    assert "runtime directory" not in caplog.text
