"""deploy/kubernetes played for real: `podman kube play` of the rendered pod with the image.

The guardian and the sandbox run as two containers of one pod, two uids, no supervisor,
sharing one emptyDir for the socket. Through the played pod: /healthz, an MCP call and a /v1
call reach a fake provider on loopback. Inside the sandbox's container no secret is readable
(its environment, its files, /proc) and the guardian's socket is its only way to the
guardian. A pod whose socket directory cannot be given to the sandbox's group refuses to
start. `podman kube down` removes it all.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.environment import SANDBOX_ENV_ALLOWLIST
from tests.fakes.providers import FakeOpenAI
from tests.helpers import ROOT, free_port, make_workdir
from tests.image.conftest import BOOTSTRAP, podman
from tests.image.test_run import mcp_call, streamed
from tests.kubernetes.render import containers, playable, render, write
from tests.security.common import PROVIDER_KEY, provider_block

pytestmark = [pytest.mark.slow, pytest.mark.root]
SECRETS = {
    "FAKE_PROVIDER_KEY": PROVIDER_KEY,
    "SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP,
    "SEALGATE_PBKDF2_ROUNDS": "1000",
}


@dataclass
class Played:
    """One played pod: its file, its secret, its URL."""

    name: str
    file: Path
    secret: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def container(self, name: str) -> str:
        return f"{self.name}-{name}"

    def exec(self, name: str, script: str) -> str:
        done = podman("exec", self.container(name), "sh", "-c", script, check=False)
        return done.stdout + done.stderr

    def state(self, name: str) -> dict[str, Any]:
        done = podman("inspect", "--format", "{{json .State}}", self.container(name))
        state: dict[str, Any] = json.loads(done.stdout)
        return state

    def logs(self) -> str:
        out = []
        for name in ("prepare-guardian", "prepare-sandbox", "guardian", "sandbox"):
            done = podman("logs", self.container(name), check=False)
            out.append(f"--- {name}\n{done.stdout}{done.stderr}")
        return "\n".join(out)

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the pod is not healthy within {timeout} s:\n{self.logs()}")


def play(image: str, fake: FakeOpenAI, tweak: Any = None) -> tuple[Played, str]:
    """Render the SQLite overlay, make it playable, `podman kube play` it: the pod and
    what `kube play` said when it failed (it waits for the init containers)."""
    port = free_port()
    name = f"sealgate-kube-{port}"
    config = (ROOT / ".pyfun").read_text() + provider_block(fake)  # type: ignore[arg-type]
    docs, secret = playable(
        render("sqlite"), name=name, image=image, config=config, secrets=SECRETS, port=port
    )
    if tweak is not None:
        tweak(docs)
    workdir = make_workdir("sealgate-kube-")
    secret_name = f"{name}-secrets"
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    containers({"spec": {"template": pod}})["guardian"]["envFrom"][0]["secretRef"]["name"] = (
        secret_name
    )
    (workdir / "secret.json").write_text(secret["json"])
    podman("secret", "create", secret_name, str(workdir / "secret.json"))
    (workdir / "secret.json").unlink()
    played = Played(name, write(docs, workdir / "pod.yaml"), secret_name, port)
    done = podman("kube", "play", str(played.file), timeout=180, check=False)
    return played, "" if done.returncode == 0 else done.stderr


def down(played: Played) -> None:
    podman("kube", "down", str(played.file), check=False, timeout=120)
    podman("secret", "rm", played.secret, check=False)
    shutil.rmtree(played.file.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def pod(image: str, fake: FakeOpenAI) -> Iterator[Played]:
    played, failed = play(image, fake)
    try:
        assert not failed, failed
        played.wait_healthy()
        yield played
    finally:
        down(played)
    left = podman("pod", "exists", played.name, check=False)
    assert left.returncode != 0, "podman kube down left the pod behind"


def test_the_played_pod_answers_health_mcp_and_v1(pod: Played) -> None:
    body = httpx.get(f"{pod.url}/healthz", timeout=5).json()
    assert body["status"] == "ok"
    assert "Answered inside the image" in mcp_call(pod)  # type: ignore[arg-type]
    assert "Answered inside the image" in streamed(pod)  # type: ignore[arg-type]


def test_two_uids_and_the_socket_directory_shared_alone(pod: Played) -> None:
    assert "uid=10001" in pod.exec("guardian", "id")
    assert "uid=10002" in pod.exec("sandbox", "id")
    listing = pod.exec("sandbox", "stat -c '%U:%G:%a' /var/lib/sealgate/s/run")
    assert listing.strip() == "hub-guardian:hub-sandbox:2750"
    # each side's run/ is a mount of the socket directory, not a name it could replace
    for side, path in (
        ("sandbox", "/var/lib/sealgate/s/run"),
        ("guardian", "/var/lib/sealgate/g/run"),
    ):
        assert f" {path} " in pod.exec(side, "cat /proc/self/mountinfo"), side
    # the guardian's state is not even mounted in the sandbox's container
    assert "No such file" in pod.exec("sandbox", "ls /var/lib/sealgate/g")


def test_no_secret_is_readable_inside_the_sandbox_container(pod: Played) -> None:
    """Its environment, every file it can read, every /proc entry it can see."""
    secrets = [PROVIDER_KEY, BOOTSTRAP]
    # the sandbox process's own environment, and the shell's
    environ = pod.exec("sandbox", "cat /proc/1/environ | tr '\\0' '\\n'; env")
    assert "HUB_RUNTIME_DIR" in environ
    # the process's environment is the allowlist alone: no variable of the image's
    own = pod.exec("sandbox", "cat /proc/1/environ | tr '\\0' '\\n'")
    names = {line.split("=", 1)[0] for line in own.splitlines() if "=" in line}
    assert names <= set(SANDBOX_ENV_ALLOWLIST), names - set(SANDBOX_ENV_ALLOWLIST)
    for name in ("FAKE_PROVIDER_KEY", "SEALGATE_BOOTSTRAP_TOKEN", *secrets):
        assert name not in environ
    # its own PID namespace: the guardian's /proc/<pid>/environ is not there to read
    pids = pod.exec("sandbox", "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '")
    cmdlines = pod.exec("sandbox", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
    assert "guardian/__main__.py" not in cmdlines, pids
    # every file it can read where a Secret or a copy would be (mounts, state, runtime
    # directories), and every process's environment and command line it can see
    places = "/run /var /etc /tmp /opt/sealgate/.pyfun /proc/[0-9]*/environ /proc/[0-9]*/cmdline"
    # the needles come on stdin, so no command line (grep's own) holds them
    found = podman(
        "exec",
        "-i",
        pod.container("sandbox"),
        "sh",
        "-c",
        f"grep -rlsF -f /dev/stdin {places} | head",
        stdin="\n".join(secrets) + "\n",
        check=False,
    ).stdout
    assert found.strip() == "", found
    # the guardian's container does hold them (the test would pass on an empty Secret)
    assert PROVIDER_KEY in pod.exec("guardian", "env")


def test_the_socket_is_the_sandbox_processes_only_way_to_the_guardian(pod: Played) -> None:
    """The sandbox process's own Landlock and seccomp, as it reports them: TCP connect
    blocked (the guardian listens on no port anyway), abstract sockets scoped, and the
    guardian's admin socket in a directory it has no mount of."""
    logs = podman("logs", pod.container("sandbox"), check=False)
    text = logs.stdout + logs.stderr
    assert "protections in force: two uids" in text
    assert "TCP connect/bind blocked" in text
    assert "abstract sockets and signals scoped" in text
    listening = pod.exec("guardian", "cat /proc/net/unix /proc/net/tcp /proc/net/tcp6")
    assert "/run/guardian.sock" in listening
    assert "admin.sock" in listening  # the operator's socket, under the guardian's emptyDir
    assert "No such file" in pod.exec("sandbox", "ls /var/lib/sealgate/g/guardian/admin.sock")


def test_a_pod_whose_socket_directory_is_not_the_sandboxs_refuses_to_start(
    image: str, fake: FakeOpenAI
) -> None:
    """Without the sandbox's group among the pod's groups, the guardian cannot give run/ to
    the sandbox: the init container refuses, and neither process starts."""

    def no_group(docs: list[dict[str, Any]]) -> None:
        (pod,) = [d for d in docs if d["kind"] == "Pod"]
        del pod["spec"]["securityContext"]["supplementalGroups"]

    played, failed = play(image, fake, no_group)
    try:
        assert "init container" in failed and "exited with code" in failed, failed
        assert played.state("prepare-guardian")["ExitCode"] != 0, played.logs()
        assert not played.state("guardian").get("Running")
        assert not played.state("sandbox").get("Running")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{played.url}/healthz", timeout=2)
    finally:
        down(played)
