"""docs/DEPLOY.md's Docker commands, run as written with podman standing in for `docker` (the
same commands; the project's podman settings through CONTAINERS_CONF): the blocks marked
"make test-image runs it with podman". Only the published ports change (free ones instead of
7860 and 7861), and the image is this checkout's, tagged `sealgate` for the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, free_port, make_workdir
from tests.image.conftest import CONTAINERS_CONF, podman
from tests.test_readme import Block, blocks

pytestmark = [pytest.mark.slow, pytest.mark.root]

MARK = "make test-image runs it with podman"
TOKEN = "docs-bootstrap-token-0123456789abcdef"
NAMES = ("sealgate", "sealgate-ro", "sealgate-space")


def deploy_blocks() -> list[Block]:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    return [b for b in blocks(text, "docs/DEPLOY.md") if b.not_run and b.not_run.endswith(MARK)]


class Shell:
    """A directory like a user's, and a `docker` that is podman."""

    def __init__(self, image: str) -> None:
        self.dir = make_workdir("sealgate-docs-")
        bin_dir = self.dir / "bin"
        bin_dir.mkdir()
        (bin_dir / "docker").write_text('#!/bin/sh\nexec podman "$@"\n')
        (bin_dir / "docker").chmod(0o755)
        self.ports = {"7860": free_port(), "7861": free_port()}
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "CONTAINERS_CONF": str(CONTAINERS_CONF),
        }
        podman("tag", image, "localhost/sealgate:latest")
        shutil.copy(ROOT / ".pyfun", self.dir / "my.pyfun")
        (self.dir / "my.pyfun").chmod(0o644)
        for name in ("sealgate.env", "space.env"):
            (self.dir / name).write_text(f"SEALGATE_BOOTSTRAP_TOKEN={TOKEN}\n")

    def run(self, text: str) -> str:
        for published, port in self.ports.items():
            text = text.replace(f"127.0.0.1:{published}:7860", f"127.0.0.1:{port}:7860")
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + text],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"{text}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def wait_healthy(self, published: str, name: str, timeout: float = 90) -> None:
        url = f"http://127.0.0.1:{self.ports[published]}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        logs = podman("logs", name, check=False)
        raise AssertionError(f"{name} not healthy:\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}")

    def close(self) -> None:
        for name in NAMES:
            podman("rm", "-f", "-t", "0", name, check=False)
        podman("volume", "rm", "-f", "sealgate-state", check=False)
        podman("untag", "localhost/sealgate:latest", "localhost/sealgate:latest", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def shell(image: str) -> Iterator[Shell]:
    for name in NAMES:
        assert podman("container", "exists", name, check=False).returncode != 0, (
            f"a container named {name} exists already: the test would remove it"
        )
    made = Shell(image)
    try:
        yield made
    finally:
        made.close()


def split(block: Block) -> tuple[str, str]:
    """The commands up to the container's start, and those for a running container."""
    head, sep, tail = block.body.partition("\ndocker exec")
    return head, (sep.lstrip("\n") + tail) if sep else ""


def exit_code(name: str) -> int:
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout)


def test_the_deploy_docker_commands_run_as_written(shell: Shell) -> None:
    chown, run, operate, hardened, space = deploy_blocks()
    assert "chown 10001:10001 sealgate.env" in chown.body
    shell.run(chown.body)
    env_file = Path(shell.dir / "sealgate.env").stat()
    assert (env_file.st_uid, env_file.st_mode & 0o777) == (10001, 0o400)

    # as root: two uids, the env file the guardian's, the state in a volume
    shell.run(run.body)
    shell.wait_healthy("7860", "sealgate")
    answer = httpx.get(
        f"http://127.0.0.1:{shell.ports['7860']}/v1/models",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text  # the bootstrap token from the env file
    out = shell.run(operate.body)
    assert "two uids" in out.lower(), out
    assert exit_code("sealgate") == 0
    podman("rm", "sealgate")

    # hardened: read-only root, seven capabilities, no new privileges
    assert "--read-only" in hardened.body and "--cap-drop ALL" in hardened.body
    shell.run(hardened.body)
    shell.wait_healthy("7860", "sealgate-ro")
    status = podman("exec", "sealgate-ro", "sealgate-ctl", "status")
    assert "two uids" in status.stdout.lower(), status.stdout
    podman("stop", "sealgate-ro")
    assert exit_code("sealgate-ro") == 0

    # as a Space: uid 1000, secrets from --env-file, /data
    start, operate_space = split(space)
    assert "--user 1000:1000" in start and "--env-file" in start
    shell.run(start)
    shell.wait_healthy("7861", "sealgate-space")
    out = shell.run(operate_space)
    assert "one uid" in out.lower(), out
    assert (shell.dir / "data" / "sealgate" / "guardian" / "guardian.db").exists()
