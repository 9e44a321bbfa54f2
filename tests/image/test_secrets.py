"""No secret in the image or in what the engine shows of it, and an image small and honest.

- A build from a checkout with canaries where users keep secrets and state (`.env`, `var/`,
  a stray `.env` or database inside a copied package): the context the engine really sends
  (listed by a probe image that copies all of it) is the one tests/image/context.py computes
  from `.dockerignore`, and no canary is in any layer of the image built from it.
- A running container in each mode, its secrets as files (Docker secrets): no secret value in
  `podman inspect` of the container or the image. Secrets passed as environment variables (a
  Space, `--env-file`) are part of the container's configuration and `inspect` shows them:
  docs/DEPLOY.md says so.
- HEALTHCHECK asks the port the hub listens on (HUB_PORT), OCI labels carry version and
  source, and the image's size and what it adds over its base are printed (docs/DEPLOY.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, make_workdir
from tests.image.conftest import BASE, BOOTSTRAP, IMAGE, MODES, Container, podman
from tests.image.context import context, tracked_files
from tests.security.common import PROVIDER_KEY

pytestmark = [pytest.mark.slow, pytest.mark.root]

CANARY = "canary-0f3c9e-never-in-an-image"
#: Where users keep secrets and state next to the code; the last two inside a package the
#: image copies whole.
CANARIES = (".env", "var/guardian/guardian.db", "guardian/.env", "sandbox/var/stray.db")
PROBE = "localhost/sealgate-context-probe:test"
CANARY_IMAGE = "localhost/sealgate:canary"
#: What the image may add over its base (the venv from the lock is most of it): 120 MB now
MAX_ADDED_MB = 130


@pytest.fixture(scope="module")
def canary_checkout(image: str) -> Iterator[Path]:
    """This checkout's files (tracked and untracked, not ignored) plus the canaries."""
    workdir = make_workdir("sealgate-canary-")
    checkout = workdir / "checkout"
    for name in tracked_files(ROOT):
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    for name in CANARIES:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(f"FAKE_PROVIDER_KEY={CANARY}\n")
    yield checkout
    for tag in (PROBE, CANARY_IMAGE):
        podman("rmi", tag, check=False)  # a tag of the same image: only the tag goes
    shutil.rmtree(workdir, ignore_errors=True)


def test_the_context_the_engine_sends_is_the_computed_one(canary_checkout: Path) -> None:
    """A probe image that copies the whole context, built with the project's .dockerignore:
    its files are exactly what context.py computes, and no canary is among them."""
    probe = canary_checkout.parent / "probe.Dockerfile"
    probe.write_text(f"FROM {BASE}\nCOPY . /context/\n")
    podman("build", "-q", "-f", str(probe), "-t", PROBE, str(canary_checkout), timeout=300)
    done = podman(
        "run", "--rm", "--entrypoint", "find", PROBE, "/context", "-type", "f", "-printf", "%P\n"
    )
    sent = set(done.stdout.split())
    files = [str(p.relative_to(canary_checkout)) for p in canary_checkout.rglob("*") if p.is_file()]
    expected = context(files, (ROOT / ".dockerignore").read_text())
    assert sent == expected
    assert "docker/entrypoint.sh" in sent and "requirements.lock" in sent
    leaked = [name for name in CANARIES if name in sent]
    assert leaked == [], f".dockerignore lets these into the context: {leaked}"


def layer_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """Every regular file of every layer of a `podman save` docker-archive."""
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if not member.name.endswith(".tar"):
                continue
            layer = outer.extractfile(member)
            assert layer is not None
            with tarfile.open(fileobj=layer) as inner:
                for entry in inner:
                    if entry.isfile():
                        data = inner.extractfile(entry)
                        assert data is not None
                        yield entry.name, data.read()


def test_no_canary_or_secret_in_any_layer(canary_checkout: Path) -> None:
    """The image built (`make image`, as docker/podman.sh runs it) from the checkout with
    canaries: no layer holds a canary, a test secret, or a `.env`."""
    done = subprocess.run(
        ["bash", str(canary_checkout / "docker" / "podman.sh"), "image"],
        env={**os.environ, "SEALGATE_IMAGE": CANARY_IMAGE, "SEALGATE_TEST_BASE": BASE},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    archive = canary_checkout.parent / "image.tar"
    podman("save", "--format", "docker-archive", "-o", str(archive), CANARY_IMAGE, timeout=600)
    needles = [s.encode() for s in (CANARY, PROVIDER_KEY, BOOTSTRAP)]
    found, files = [], 0
    for name, data in layer_files(archive):
        files += 1
        if name.startswith("opt/sealgate/") and (name.endswith(".env") or "/var/" in name):
            found.append(name)
        found += [f"{name}: {n.decode()}" for n in needles if n in data]
    archive.unlink()
    assert files > 1000  # the layers were really read
    assert found == []


@pytest.mark.parametrize("mode", MODES)
def test_inspect_shows_no_secret(mode: str, run_container: Callable[..., Container]) -> None:
    container = run_container(mode, secrets_as="files")
    # the secrets reached the guardian: a call to the provider with its key works
    status = container.exec("sealgate-ctl", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    shown = podman("inspect", container.name).stdout + podman("image", "inspect", IMAGE).stdout
    assert container.name in shown
    for secret in (PROVIDER_KEY, BOOTSTRAP):
        assert secret not in shown


def test_healthcheck_follows_hub_port(run_container: Callable[..., Container]) -> None:
    check = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Healthcheck"]
    assert check["Test"] == ["CMD", "python", "-I", "/opt/sealgate/docker/healthcheck.py"]
    container = run_container("uid1000")
    assert container.port != 7860
    healthy = podman("healthcheck", "run", container.name, check=False)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    elsewhere = container.exec(
        "python", "-I", "/opt/sealgate/docker/healthcheck.py", env={"HUB_PORT": str(free_port())}
    )
    assert elsewhere.returncode == 1, elsewhere.stdout + elsewhere.stderr


def size_mb(image: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6


def test_labels_and_size(image: str) -> None:
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}", image).stdout)
    assert labels["org.opencontainers.image.version"]
    assert labels["org.opencontainers.image.source"].startswith("https://")
    total, base = size_mb(image), size_mb(BASE)
    history = podman("history", "--format", "{{.Size}}\t{{.CreatedBy}}", "--no-trunc", image).stdout
    big = [line[:120] for line in history.splitlines() if line.split("\t")[0].endswith("MB")]
    print(
        f"\nimage {image}: {total:.0f} MB; base {BASE}: {base:.0f} MB;"
        f" added over the base: {total - base:.0f} MB\n  " + "\n  ".join(big)
    )
    assert total - base <= MAX_ADDED_MB
