"""deploy/kubernetes, rendered by `kubectl kustomize` and checked offline: every resource
against the Kubernetes schemas (kubernetes-validate), the pod's security settings one by
one, the command lines and environments the supervisor would build, the Secret in the
guardian's container alone, and a security lint (checkov, in a venv of its own, when
installed). Playing the pod for real is `make test-slow` (tests/image/test_kubernetes.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from protocol.environment import SANDBOX_ENV_ALLOWLIST
from supervise.children import SANDBOX_HOME
from tests.kubernetes.render import OVERLAYS, containers, find, render

#: checkov's own venv (never the project's locks): docs/SCALING.md says how to make it.
CHECKOV = Path(os.environ.get("SEALGATE_CHECKOV", "~/.cache/sealgate-checkov/bin/checkov"))
#: checkov's findings the manifests leave on purpose, each with its reason (docs/SCALING.md).
CHECKOV_SKIPS = {
    # the namespace is the operator's choice (`kustomize edit set namespace`)
    "CKV_K8S_21",
    # the image is the operator's build, tagged by kustomize's `images:`; a digest there
    # is the operator's to pin
    "CKV_K8S_14",
    "CKV_K8S_43",
    # the image is built locally, not pulled
    "CKV_K8S_15",
    # secrets as env in the guardian's container: a Secret volume's files are root's 0400
    # unless fsGroup, and fsGroup would put the sandbox's container in the group too
    "CKV_K8S_35",
}
GUARDIAN_SECRET_NAMES = ("sealgate-secrets",)


@pytest.fixture(scope="module", params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def test_every_resource_passes_the_kubernetes_schemas(docs: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_overlays_differ_in_replicas_and_the_hpa() -> None:
    sqlite, postgres = render("sqlite"), render("postgres")
    assert find(sqlite, "Deployment")["spec"]["replicas"] == 1
    assert find(postgres, "Deployment")["spec"]["replicas"] == 3
    assert not [d for d in sqlite if d["kind"] == "HorizontalPodAutoscaler"]
    assert find(postgres, "HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3
    for docs in (sqlite, postgres):
        kinds = {d["kind"] for d in docs}
        assert {"Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


def test_every_container_is_locked_down(docs: list[dict[str, Any]]) -> None:
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "fsGroup" not in pod["securityContext"]
    assert pod.get("shareProcessNamespace", False) is False
    uids = {}
    for name, container in containers(find(docs, "Deployment")).items():
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        uids[name] = security["runAsUser"]
    assert uids["guardian"] == uids["prepare-guardian"] != uids["sandbox"]
    assert uids["sandbox"] == uids["prepare-sandbox"]


def test_the_command_lines_are_the_supervisors(docs: list[dict[str, Any]]) -> None:
    """supervise/children.py's entry_argv: `python -I`, the sandbox also `-S`."""
    by_name = containers(find(docs, "Deployment"))
    assert by_name["guardian"]["command"][1:] == ["-I", "/opt/sealgate/guardian/__main__.py"]
    _, argv = sandbox_command(by_name["sandbox"])
    assert argv[1:] == ["-I", "-S", "/opt/sealgate/sandbox/__main__.py"]


def sandbox_command(container: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The sandbox's `env -i NAME=VALUE... python ...`: its whole environment, and argv."""
    command = container["command"]
    assert command[:2] == ["/usr/bin/env", "-i"], command
    rest = command[2:]
    assignments = [word for word in rest if "=" in word and not word.startswith("/")]
    argv = rest[len(assignments) :]
    return dict(word.split("=", 1) for word in assignments), argv


def test_the_secret_reaches_the_guardians_container_alone(docs: list[dict[str, Any]]) -> None:
    deployment = find(docs, "Deployment")
    by_name = containers(deployment)
    guardian = by_name["guardian"]
    assert [e["secretRef"]["name"] for e in guardian["envFrom"]] == list(GUARDIAN_SECRET_NAMES)
    env = {e["name"]: e.get("value") for e in guardian["env"]}
    sandbox_uid = str(by_name["sandbox"]["securityContext"]["runAsUser"])
    assert env["HUB_SANDBOX_UID"] == sandbox_uid
    for name, container in by_name.items():
        if name == "guardian":
            continue
        assert "envFrom" not in container, name
        for entry in container.get("env", []):
            assert "valueFrom" not in entry, (name, entry)
    # no Secret volume at all: the guardian takes its secrets from its environment
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert not [v for v in volumes if "secret" in v or "projected" in v]


def test_the_sandboxs_environment_is_the_supervisors_allowlist(
    docs: list[dict[str, Any]],
) -> None:
    """Under `env -i`: the image's own ENV lines (PYTHON*, PIP_*, HUB_ENV_FILE, ...) never
    reach the sandbox, only the allowlisted names the command line sets."""
    sandbox = containers(find(docs, "Deployment"))["sandbox"]
    env, _ = sandbox_command(sandbox)
    assert set(env) <= set(SANDBOX_ENV_ALLOWLIST)
    assert env["HOME"] == SANDBOX_HOME
    assert {"PATH", "HUB_CONFIG", "HUB_RUNTIME_DIR", "HUB_HOST", "HUB_PORT"} <= set(env)
    assert "env" not in sandbox and "envFrom" not in sandbox


def test_the_socket_directory_is_a_mount_point_in_each_process_container(
    docs: list[dict[str, Any]],
) -> None:
    """An emptyDir's root is 0777: a `run/` inside it (or a link to one) could be replaced
    by the sandbox, and the guardian refuses to start on such a directory. Each process
    container mounts the socket directory itself (a subPath) as its runtime's `run`."""
    by_name = containers(find(docs, "Deployment"))
    for name, side in (("guardian", "g"), ("sandbox", "s")):
        container = by_name[name]
        socket = [m for m in container["volumeMounts"] if m["name"] == "socket"]
        runtime = next(e for e in container_env(container) if e[0] == "HUB_RUNTIME_DIR")[1]
        assert runtime == f"/var/lib/sealgate/{side}"
        assert socket == [{"name": "socket", "mountPath": f"{runtime}/run", "subPath": "run"}], (
            name,
            socket,
        )


def container_env(container: dict[str, Any]) -> list[tuple[str, str]]:
    if container["command"][:2] == ["/usr/bin/env", "-i"]:
        return list(sandbox_command(container)[0].items())
    return [(e["name"], e.get("value", "")) for e in container.get("env", [])]


def test_only_the_socket_directory_is_shared(docs: list[dict[str, Any]]) -> None:
    by_name = containers(find(docs, "Deployment"))
    mounts = {name: {m["name"] for m in c["volumeMounts"]} for name, c in by_name.items()}
    shared = (mounts["guardian"] | mounts["prepare-guardian"]) & (
        mounts["sandbox"] | mounts["prepare-sandbox"]
    )
    assert shared == {"socket", "config"}
    volumes = find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "socket")["emptyDir"]
    assert next(v for v in volumes if v["name"] == "config")["configMap"]


def test_checkov_finds_nothing_beyond_the_documented_skips(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    checkov = CHECKOV.expanduser()
    if not checkov.exists():
        pytest.skip(f"checkov is not installed at {checkov} (docs/SCALING.md says how)")
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [
            str(checkov),
            "--skip-download",
            "--quiet",
            "--compact",
            "--framework",
            "kubernetes",
            "--skip-check",
            ",".join(sorted(CHECKOV_SKIPS)),
            "-f",
            str(rendered),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
