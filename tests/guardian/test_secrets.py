from __future__ import annotations

from pathlib import Path

from guardian.secrets import CREDENTIALS, ENV_FILE, ENVIRONMENT, load_secrets


def test_lookup_order_credentials_then_environment_then_env_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "A_KEY").write_text("from-credentials\n")
    env_file = tmp_path / ".env"
    env_file.write_text("A_KEY=from-file-a\nB_KEY=from-file-b\nC_KEY=from-file-c\nOTHER=zzzzzzzz\n")
    secrets = load_secrets(
        wanted=["A_KEY", "B_KEY", "C_KEY", "D_KEY"],
        environ={"B_KEY": "from-environ", "PATH": "/usr/bin"},
        env_file=env_file,
        credentials_dir=creds,
    )
    assert secrets.get("A_KEY") == "from-credentials" and secrets.origin("A_KEY") == CREDENTIALS
    assert secrets.get("B_KEY") == "from-environ" and secrets.origin("B_KEY") == ENVIRONMENT
    assert secrets.get("C_KEY") == "from-file-c" and secrets.origin("C_KEY") == ENV_FILE
    assert "D_KEY" not in secrets
    # every value in the env file is redacted, named or not; PATH is not a secret
    assert "zzzzzzzz" in secrets.values_to_redact()
    assert "/usr/bin" not in secrets.values_to_redact()
    assert "from-credentials" not in repr(secrets)


def test_missing_sources_are_fine(tmp_path: Path) -> None:
    secrets = load_secrets(
        wanted=["A_KEY"], environ={}, env_file=tmp_path / "absent", credentials_dir=tmp_path / "no"
    )
    assert secrets.names() == []
