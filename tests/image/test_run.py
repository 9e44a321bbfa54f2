"""The image run as users run it, in both modes, against the fake provider on loopback:
as root (two uids: the supervisor drops to hub-guardian and hub-sandbox) and as uid 1000
(a Hugging Face Space: secrets as environment variables, SPACE_HOST, a writable /data).
Each serves /healthz, an MCP tools/call with the official client, a streamed
/v1/chat/completions, `podman exec ... sealgate-ctl status`; SIGTERM (`podman stop`) ends it
with exit 0 within 10 s and no usage row is lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from openai import OpenAI

from tests.e2e.mcp_client import mcp_session
from tests.image.conftest import BOOTSTRAP, MODES, ROOT_CAPS, Container

pytestmark = [pytest.mark.slow, pytest.mark.root]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP}"}


def mcp_call(container: Container) -> str:
    async def ask() -> str:
        async with mcp_session(container.url, headers=AUTH) as client:
            result = await client.call_tool("llm_complete", {"prompt": "Hi", "provider": "fake"})
        return str(result.structured_content["text"])

    return asyncio.run(ask())


def streamed(container: Container) -> str:
    with OpenAI(base_url=f"{container.url}/v1", api_key=BOOTSTRAP, max_retries=0) as client:
        chunks = client.chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def usage_calls(container: Container) -> int:
    done = container.exec("sealgate-ctl", "usage", "report", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return sum(int(row["calls"]) for row in json.loads(done.stdout)["rows"])


def serves(container: Container) -> None:
    """What a user does first, and what the operator sees."""
    assert "Answered inside the image" in mcp_call(container)
    assert "Answered inside the image" in streamed(container)
    status = container.exec("sealgate-ctl", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    expected = "two uids" if container.mode == "root" else "one uid"
    assert expected in status.stdout.lower(), status.stdout
    assert "sandbox            connected" in status.stdout, status.stdout
    assert "signed by libsodium" in status.stdout, status.stdout  # the image has libsodium23


def stops_cleanly_and_keeps_every_usage_row(container: Container) -> None:
    calls = usage_calls(container)
    before = len(container.fake.requests)
    for _ in range(3):
        mcp_call(container)
    code, took = container.stop()
    assert code == 0 and took < 10, (code, took, container.logs()[-3000:])
    billed = len(container.fake.requests) - before
    assert billed == 3
    container.restart()
    assert usage_calls(container) == calls + billed


@pytest.mark.parametrize("mode", MODES)
def test_the_image_serves_and_stops_in_each_mode(
    mode: str, run_container: Callable[..., Container]
) -> None:
    container = run_container(mode)
    serves(container)
    if mode == "uid1000":
        # the databases on the Space's persistent volume, the sockets on the container's disk
        assert (container.data / "sealgate" / "guardian" / "guardian.db").exists()
        logs = container.logs()
        assert "databases under /data/sealgate (persistent)" in logs, logs[-2000:]
    stops_cleanly_and_keeps_every_usage_row(container)


def hardened(mode: str) -> list[str]:
    """A read-only root, tmpfs only for the runtime directory, every capability dropped but
    those the root supervisor needs (none at all as uid 1000), no new privileges."""
    flags = ["--read-only", "--cap-drop", "all", "--security-opt", "no-new-privileges"]
    if mode == "root":
        flags += [f"--cap-add={cap}" for cap in ROOT_CAPS]
        flags += ["--tmpfs", "/var/lib/sealgate:rw,mode=0755"]
        # secret files are mounted beneath /run/secrets: on a read-only root, a tmpfs there
        flags += ["--tmpfs", "/run/secrets:rw,mode=0755"]
    else:
        # U: owned by the container's user (podman; Docker's --tmpfs takes uid=1000,gid=1000)
        flags += ["--tmpfs", "/var/lib/sealgate:rw,mode=0755,U"]
    return flags


@pytest.mark.parametrize("mode", MODES)
def test_a_read_only_root_with_capabilities_dropped(
    mode: str, run_container: Callable[..., Container]
) -> None:
    container = run_container(mode, *hardened(mode))
    serves(container)
    effective = container.exec("sh", "-c", "grep CapEff /proc/1/status")
    assert effective.returncode == 0, effective.stderr
    if mode == "uid1000":
        assert effective.stdout.split()[1] == "0000000000000000", effective.stdout
    code, took = container.stop()
    assert code == 0 and took < 10, (code, took)
