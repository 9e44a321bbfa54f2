"""The container image, built and run with a real engine (podman): `make test-image`.

Every test here is `slow` and needs root (podman's rootful mode, debootstrap): `make test`
leaves them out, `make test-image` runs them. The base image is built once from Debian's
packages and cached by podman (docker/podman.sh); the SealGate image is built once per
session (podman's layer cache makes a rebuild of an unchanged tree quick).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.fakes.providers import FakeOpenAI
from tests.helpers import ROOT, free_port, make_workdir
from tests.security.common import PROVIDER_KEY, provider_block

CONTAINERS_CONF = ROOT / "docker" / "containers.conf"
BASE = os.environ.get("SEALGATE_TEST_BASE", "localhost/sealgate-base:bookworm")
IMAGE = os.environ.get("SEALGATE_IMAGE", "localhost/sealgate:test")
BOOTSTRAP = "image-bootstrap-token-0123456789abcdef"
SPACE_HOST = "someone-sealgate.hf.space"
#: What the supervisor needs in root mode, and nothing else: it drops to two users (SETUID,
#: SETGID), gives them their directories (CHOWN, FOWNER; FSETID keeps the setgid bit on
#: run/, so guardian.sock belongs to the sandbox's group), works in the runtime directory uid
#: 1000 owns (DAC_OVERRIDE) and signals children of other uids (KILL).
ROOT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")
MODES = ("root", "uid1000")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds or runs the container image (make test-image)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` (no `-m slow`) leaves the image's tests out."""
    if "slow" in (config.option.markexpr or ""):
        return
    here = Path(__file__).parent
    slow = [i for i in items if i.get_closest_marker("slow") and here in Path(i.path).parents]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [i for i in items if i not in slow]


def podman(
    *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    done = subprocess.run(
        ["podman", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built from this checkout on the cached Debian base."""
    if os.geteuid() != 0:
        pytest.fail("the image tests run podman as root (make test-image as root)")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "podman.sh"), "image"],
        env={**os.environ, "SEALGATE_IMAGE": IMAGE, "SEALGATE_TEST_BASE": BASE},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"\nimage {IMAGE} built in {time.monotonic() - started:.0f} s")
    return IMAGE


@pytest.fixture(scope="session")
def service_uids(image: str) -> dict[str, int]:
    """The image's hub-guardian and hub-sandbox uids."""
    uids = {}
    for name in ("hub-guardian", "hub-sandbox"):
        done = podman("run", "--rm", "--entrypoint", "id", image, "-u", name)
        uids[name] = int(done.stdout.strip())
    return uids


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text="Answered inside the image")
    server.start()
    yield server
    server.stop()


@dataclass
class Container:
    """One `podman run -d` of the image on the host's network, with its files on the host."""

    image: str
    mode: str
    fake: FakeOpenAI
    guardian_uid: int
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: "files" (Docker secrets under /run/secrets, readable by the guardian's uid alone) or
    #: "env" (environment variables, as a Space passes them); default: files as root, env
    #: as uid 1000
    secrets_as: str = ""
    name: str = ""
    port: int = 0
    dir: Path = Path()
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.secrets_as = self.secrets_as or ("files" if self.mode == "root" else "env")
        self.port = free_port()
        self.dir = make_workdir("sealgate-image-")
        self.name = f"sealgate-test-{self.mode}-{self.port}"
        self.config = self.dir / "pyfun"
        self.config.write_text(
            (ROOT / ".pyfun").read_text() + provider_block(self.fake)  # type: ignore[arg-type]
        )
        self.config.chmod(0o644)
        self.data = self.dir / "data"
        self.data.mkdir(mode=0o755)
        if self.mode == "uid1000":
            os.chown(self.data, 1000, 1000)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def secret(self, name: str, value: str) -> str:
        """A podman secret (never in the image, the container's config or inspect)."""
        secret = f"{self.name}-{name.lower()}"
        podman("secret", "create", secret, "-", stdin=value)
        self.secrets.append(secret)
        if self.secrets_as == "files":
            # Docker secrets: a file in /run/secrets that only the guardian's user reads
            uid = self.guardian_uid if self.mode == "root" else 1000
            return f"--secret={secret},target={name},uid={uid},mode=0400"
        # a Space: secrets are environment variables (`podman inspect` shows them)
        return f"--secret={secret},type=env,target={name}"

    def argv(self) -> list[str]:
        argv = ["run", "-d", "--name", self.name, "--network", "host", "--ulimit", "host"]
        argv += ["-e", "HUB_HOST=127.0.0.1", "-e", f"HUB_PORT={self.port}"]
        argv += ["-e", "HUB_CONFIG=/etc/sealgate/pyfun", "-e", "SEALGATE_PBKDF2_ROUNDS=1000"]
        argv += ["-v", f"{self.config}:/etc/sealgate/pyfun:ro"]
        argv += [self.secret("FAKE_PROVIDER_KEY", PROVIDER_KEY)]
        argv += [self.secret("SEALGATE_BOOTSTRAP_TOKEN", BOOTSTRAP)]
        if self.mode == "uid1000":
            argv += ["--user", "1000:1000", "-e", f"SPACE_HOST={SPACE_HOST}"]
            argv += ["-v", f"{self.data}:/data"]
        for key, value in self.env.items():
            argv += ["-e", f"{key}={value}"]
        return [*argv, *self.extra, self.image]

    def start(self) -> Container:
        podman(*self.argv())
        self.wait_healthy()
        return self

    def state(self) -> dict[str, object]:
        done = podman("inspect", "--format", "{{json .State}}", self.name)
        state: dict[str, object] = json.loads(done.stdout)
        return state

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state().get("Running"):
                raise AssertionError(f"the container exited:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not healthy within {timeout} s:\n{self.logs()}")

    def exec(
        self, *argv: str, user: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        flags = ["--user", user] if user else []
        for key, value in (env or {}).items():
            flags += ["-e", f"{key}={value}"]
        return podman("exec", *flags, self.name, *argv, check=False, timeout=300)

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def stop(self, timeout: int = 10) -> tuple[int, float]:
        """`podman stop` (SIGTERM, then SIGKILL after `timeout`): exit code and seconds."""
        started = time.monotonic()
        podman("stop", "-t", str(timeout), self.name, timeout=timeout + 30)
        took = time.monotonic() - started
        return int(self.state()["ExitCode"]), took  # type: ignore[call-overload]

    def restart(self) -> None:
        podman("start", self.name)
        self.wait_healthy()

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
        for secret in self.secrets:
            podman("secret", "rm", secret, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def run_container(image: str, fake: FakeOpenAI, service_uids: dict[str, int]) -> Iterator[object]:
    made: list[Container] = []

    def start(
        mode: str, *extra: str, env: Mapping[str, str] | None = None, secrets_as: str = ""
    ) -> Container:
        container = Container(
            image,
            mode,
            fake,
            service_uids["hub-guardian"],
            list(extra),
            dict(env or {}),
            secrets_as,
        )
        made.append(container)
        return container.start()

    yield start
    for container in made:
        container.remove()
