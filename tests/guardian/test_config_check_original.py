"""`sealgate-ctl config check` on a file written for the original hub lists every ignored
key and every translation, one per line, and still calls the file OK."""

from __future__ import annotations

import subprocess

from protocol.pyfun import parse
from tests.helpers import PYTHON, ROOT

ORIGINAL = ROOT / "tests" / "data" / "original_hub.pyfun"


def test_config_check_lists_every_ignored_key_and_translation() -> None:
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "guardian.ctl",
            "--socket",
            "/nonexistent",
            "config",
            "check",
            str(ORIGINAL),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{ORIGINAL}: OK")
    config = parse(ORIGINAL.read_text(), str(ORIGINAL))
    warnings = [line for line in lines if line.startswith("warning: ")]
    translated = [line for line in lines if line.startswith("translated: ")]
    assert warnings == [f"warning: {w}" for w in config.warnings]
    assert translated == [f"translated: {t}" for t in config.translations]
    text = "\n".join(lines)
    for key in (
        "HUB_VERSION",
        "HUB_DESCRIPTION",
        "HUB_MODE",
        "HUB_STATELESS",
        "SQLITE_PATH",
        "SYNC_INTERVAL_SEC",
        "LOG_FILE",
        "[WEB_PROVIDERS]",
        "[PARSER_PROVIDER]",
        "[FALLBACK]",
    ):
        assert [line for line in warnings if key in line], key
    for key in (
        "RETRY_COUNT",
        "RETRY_DELAY_SEC",
        "MAX_PARALLEL_REQUESTS",
        "REQUEST_TIMEOUT_SEC",
        "SEARCH_TIMEOUT_SEC",
        "MAX_CACHE_ENTRIES",
        "HUB_NAME",
        "HUB_SPACE_URL",
        "cost_input_per_1k",
        "context_tokens",
        "api_version_header",
    ):
        assert [line for line in translated if key in line], key
    assert "Traceback" not in text + result.stderr
