"""The image's entrypoint run as a Hugging Face Space runs it, outside Docker: a non-root uid,
the Space's secrets in the environment, `SPACE_HOST` set, a writable `/data`-like volume.

It must serve; the secrets must reach the guardian only (not the sandbox's environment, not
its files); the databases must land on the volume while the sockets stay local; a sealed
call must work with the Space's Host and Origin, and through a private Space's gate
(`Authorization` carries the Hugging Face token, SealGate's own in `X-API-Key`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.providers import FakeOpenAI
from tests.helpers import ROOT, Stack, two_uid_possible, uid_of
from tests.security.common import PROVIDER_KEY, provider_block
from tests.security.conftest import SINGLE_USER

SPACE_HOST = "someone-sealgate.hf.space"
BOOTSTRAP = "space-bootstrap-token-0123456789abcdef"
HF_GATE = "hf_space_gate_token_not_ours_0123456789"
SECRETS = {"FAKE_PROVIDER_KEY": PROVIDER_KEY, "SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP}


@dataclass
class Space:
    stack: Stack
    local: Path
    data: Path
    uid: int

    def sandbox_pid(self) -> int:
        return self.stack.pid_of("sandbox")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text="Answered inside a Space")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def space(fake: FakeOpenAI) -> Iterator[Space]:
    if os.geteuid() == 0:
        reason = two_uid_possible()
        if reason is not None:
            pytest.fail(f"cannot run the entrypoint as an ordinary user here: {reason}")
        from supervise.users import ensure_user

        user = ensure_user(SINGLE_USER)
        uid, gid = user.uid, user.gid
    else:
        uid, gid = os.getuid(), os.getgid()
    config = '[HUB]\nname = "SealGate Space"\n[HUB_END]\n' + provider_block(fake)
    stack = Stack(single_uid=False, env=SECRETS, config_text=config)
    local, data = stack.dir / "local", stack.dir / "data"
    for directory in (local, data):
        directory.mkdir()
    for path in (stack.dir, *stack.dir.iterdir()):
        os.chown(path, uid, gid)
    stack.env.pop("HUB_RUNTIME_DIR")  # as in the image: the entrypoint decides
    stack.env.update(
        {
            "SPACE_HOST": SPACE_HOST,
            "SPACE_ID": "someone/sealgate",
            "HF_TOKEN": HF_GATE,  # a Space secret SealGate does not use: still never leaks
            "HUB_HOST": "127.0.0.1",
            "SEALGATE_LOCAL_DIR": str(local),
            "SEALGATE_PERSISTENT_DIR": str(data),
            "SEALGATE_PYTHON": sys.executable,
            "HOME": str(stack.dir),
        }
    )
    log = stack.log_path.open("ab")
    stack.process = subprocess.Popen(
        [str(ROOT / "docker" / "entrypoint.sh")],
        env=stack.env,
        cwd=stack.dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        **({"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}),
    )
    log.close()
    try:
        stack.wait_healthy()
        yield Space(stack, local, data, uid)
    finally:
        stack.cleanup()


def _secret_values() -> list[bytes]:
    return [v.encode() for v in (*SECRETS.values(), HF_GATE)]


def test_it_serves_as_the_space_user_with_single_uid_protections(space: Space) -> None:
    sandbox = space.sandbox_pid()
    status = Path(f"/proc/{sandbox}/status").read_text()
    assert f"Uid:\t{space.uid}\t" in status and "NoNewPrivs:\t1" in status
    assert "Seccomp:\t2" in status
    assert uid_of(space.stack.pid_of("guardian")) == space.uid  # not dumpable: /proc is root's
    logs = space.stack.logs()
    assert "databases under" in logs and "not root" in logs


def test_secrets_reach_the_guardian_only(space: Space) -> None:
    sandbox = space.sandbox_pid()
    environ = Path(f"/proc/{sandbox}/environ").read_bytes()
    for value in _secret_values():
        assert value not in environ
    names = {item.split(b"=", 1)[0] for item in environ.split(b"\0") if item}
    assert b"SPACE_HOST" in names and b"HF_TOKEN" not in names
    guardian = Path(f"/proc/{space.stack.pid_of('guardian')}/environ").read_bytes()
    assert PROVIDER_KEY.encode() in guardian  # ...so the check above can fail
    sandbox_files = [
        p
        for root in (space.local / "sandbox", space.data / "sealgate" / "sandbox")
        for p in root.rglob("*")
        if p.is_file()
    ]
    assert sandbox_files, "the sandbox wrote no state file"
    for path in sandbox_files:
        content = path.read_bytes()
        assert not any(value in content for value in _secret_values()), path
    assert not any(value in space.stack.logs().encode() for value in _secret_values())


def test_databases_on_the_volume_sockets_local(space: Space) -> None:
    assert (space.data / "sealgate" / "guardian" / "guardian.db").is_file()
    assert (space.data / "sealgate" / "sandbox" / "hub_state.db").is_file()
    assert (space.local / "run" / "guardian.sock").is_socket()
    assert not (space.local / "guardian" / "guardian.db").exists()
    assert not any(p.is_socket() for p in space.data.rglob("*"))


def test_a_sealed_call_through_the_space_host(space: Space) -> None:
    body = {"tool": "llm_complete", "params": {"prompt": "Hi"}}
    url = f"{space.stack.url}/api"
    as_space = {"host": SPACE_HOST, "origin": f"https://{SPACE_HOST}"}
    public = httpx.post(
        url, json=body, headers={**as_space, "authorization": f"Bearer {BOOTSTRAP}"}, timeout=30
    )
    assert public.status_code == 200, public.text
    assert public.json()["result"] == "Answered inside a Space"
    private = httpx.post(
        url,
        json=body,
        headers={**as_space, "authorization": f"Bearer {HF_GATE}", "x-api-key": BOOTSTRAP},
        timeout=30,
    )
    assert private.status_code == 200, private.text
    foreign = httpx.post(
        url,
        json=body,
        headers={
            "host": SPACE_HOST,
            "origin": "https://evil.example",
            "authorization": f"Bearer {BOOTSTRAP}",
        },
        timeout=30,
    )
    assert foreign.status_code == 403
    other_host = httpx.get(f"{space.stack.url}/healthz", headers={"host": "evil.example"})
    assert other_host.status_code == 200  # /healthz is exempt; everything else is not
    refused = httpx.get(f"{space.stack.url}/", headers={"host": "evil.example"})
    assert refused.status_code == 421


def test_a_401_on_a_space_advises_x_api_key(space: Space) -> None:
    """A private Space's gate keeps Authorization for the Hugging Face token: the refusal says
    where SealGate's token goes instead."""
    body = {"tool": "llm_complete", "params": {"prompt": "Hi"}}
    as_space = {"host": SPACE_HOST, "origin": f"https://{SPACE_HOST}"}
    for headers in ({"authorization": f"Bearer {HF_GATE}"}, {}):
        refused = httpx.post(
            f"{space.stack.url}/api", json=body, headers={**as_space, **headers}, timeout=30
        )
        assert refused.status_code == 401, refused.text
        message = refused.json()["error"]["message"]
        assert "X-API-Key: sg_..." in message and "private Hugging Face Space" in message
    wrong_key = httpx.post(
        f"{space.stack.url}/api",
        json=body,
        headers={**as_space, "x-api-key": "sg_not-a-real-token-000000000000"},
        timeout=30,
    )
    assert wrong_key.status_code == 401
    assert "X-API-Key" not in wrong_key.json()["error"]["message"]  # it was used already
