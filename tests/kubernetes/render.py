"""deploy/kubernetes rendered by `kubectl kustomize`, and made playable by `podman kube play`.

What `kube play` needs that a cluster would not: the image tagged as built here, the
Secret in the same file, the test's configuration (a fake provider on loopback) in the
ConfigMap, and the pod on the host's network and port (the fake provider and the test's
client are on 127.0.0.1).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("sqlite", "postgres")


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError("kubectl is missing (Debian: apt-get install kubectl)")
    return found


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/kubernetes/overlays/<overlay>`, as documents."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def containers(deployment: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container of the pod, init containers too, by name."""
    spec = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def playable(
    docs: list[dict[str, Any]],
    *,
    name: str,
    image: str,
    config: str,
    secrets: Mapping[str, str],
    port: int,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The Deployment's pod and its ConfigMap as `podman kube play` takes them, and the
    Secret as podman 4.3 reads it (a podman secret holding a JSON map of base64 values)."""
    deployment = find(docs, "Deployment")
    configmap = find(docs, "ConfigMap")
    configmap["data"] = {"pyfun": config}
    listen = {"HUB_PORT": str(port), "HUB_HOST": "127.0.0.1"}
    for container_name, container in containers(deployment).items():
        container["image"] = image
        for env in container.get("env", []):
            if env["name"] in listen:
                env["value"] = listen[env["name"]]
        # the sandbox's `env -i NAME=VALUE ...` command line
        container["command"] = [
            f"{word.split('=', 1)[0]}={listen[word.split('=', 1)[0]]}"
            if "=" in word and word.split("=", 1)[0] in listen
            else word
            for word in container["command"]
        ]
        # podman 4.3 ignores subPath on a volume and mounts its root: the played pod mounts
        # the socket volume's root as each container's run/, and the init container makes
        # that root the socket directory (2750, the sandbox's group), as run/ is in the pod
        for mount in container.get("volumeMounts", []):
            if mount["name"] != "socket":
                continue
            if mount.pop("subPath", None) is None and container_name == "prepare-guardian":
                mount["mountPath"] = f"{mount['mountPath']}/run"
    sandbox = containers(deployment)["sandbox"]
    # the host's network: no port mapping, and the probes name the port itself
    sandbox.pop("ports", None)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        sandbox[probe]["httpGet"]["port"] = port
    spec = deployment["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    secret_name = containers(deployment)["guardian"]["envFrom"][0]["secretRef"]["name"]
    secret = {"name": secret_name, "json": json.dumps({k: b64(v) for k, v in secrets.items()})}
    # podman 4.3 restarts a finished init container under the Deployment's restart policy
    # (Always) and fails the play: the Deployment's pod is played as a Pod that never
    # restarts, so a container that refuses to start stays stopped for the test to see.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": deployment["spec"]["template"]["metadata"]["labels"]},
        "spec": {**spec, "restartPolicy": "Never"},
    }
    return [configmap, pod], secret


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def write(docs: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path
