"""One source of configuration and identity for every replica (issue 29 item 4): `sealgate-ctl
config reload` on one replica reaches every replica within 2 s (each re-reads its own copy of
the one file, as pods mount one ConfigMap), and `tools/list_changed` reaches the MCP clients
connected to each; a token revoked or a user deleted on one replica is refused on every
replica within the same 2 s (each guardian's few-second cache of resolved credentials is
dropped by a NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.mcp_client import mcp_session
from tests.e2e.test_mcp_changes import Heard, listening
from tests.fakes.providers import FakeOpenAI
from tests.helpers import run_ctl
from tests.pg import PostgresServer
from tests.replicas.cluster import Cluster, running_cluster
from tests.security.stackdb import user_with_token

ADMIN = "sg_one-source-bootstrap-0123456789abcdef"
WITHIN_S = 2.0
PROVIDER = """
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
[LLM_PROVIDER.fake_END]
"""
TOOL = """
[TOOL.summarize]
provider_type = "llm"
default_provider = "fake"
system_prompt = "Summarize."
[TOOL.summarize_END]
"""
BODY = {"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text="ok").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(postgres: PostgresServer, fake: FakeOpenAI) -> Iterator[Cluster]:
    with running_cluster(
        postgres, PROVIDER.format(base=fake.base), {"SEALGATE_BOOTSTRAP_TOKEN": ADMIN}
    ) as (made, _):
        yield made


def test_a_reload_on_one_replica_reaches_the_clients_of_every_replica(
    cluster: Cluster, fake: FakeOpenAI
) -> None:
    async def run() -> None:
        heard = [Heard() for _ in cluster.stacks]
        # the reload is made on replica 0: the clients of the others hear it through it
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with contextlib.AsyncExitStack() as sessions:
            clients = [
                await sessions.enter_async_context(
                    mcp_session(stack.url, "http", "legacy", headers, one.legacy_message)
                )
                for stack, one in zip(cluster.stacks, heard, strict=True)
            ]
            # and a 2026-07-28 client's subscriptions/listen stream, through the balancer
            modern = await sessions.enter_async_context(
                mcp_session(cluster.url, "http", "auto", headers)
            )
            assert modern.session.discover_result is not None
            listen = Heard()
            await sessions.enter_async_context(listening(modern, listen))
            heard.append(listen)
            for client in clients:
                assert "summarize" not in {t.name for t in (await client.list_tools()).tools}
            text = PROVIDER.format(base=fake.base) + TOOL
            for stack in cluster.stacks:  # the one source, as each pod sees it
                stack.config.write_text(text)
            started = time.monotonic()
            reloaded = run_ctl(cluster.admin, "config", "reload")
            assert reloaded.returncode == 0, reloaded.stderr
            while any("tools" not in one.kinds for one in heard):
                assert time.monotonic() - started < WITHIN_S, [h.kinds for h in heard]
                await asyncio.sleep(0.05)
            for client in clients:
                assert "summarize" in {t.name for t in (await client.list_tools()).tools}

    asyncio.run(run())


def refused_everywhere_within(cluster: Cluster, token: str, since: float) -> None:
    """Every replica refuses `token` on a sealed call, within WITHIN_S of `since`."""
    headers = {"Authorization": f"Bearer {token}"}
    pending = set(range(len(cluster.stacks)))
    while pending:
        for i in sorted(pending):
            url = f"{cluster.stacks[i].url}/v1/chat/completions"
            if httpx.post(url, json=BODY, headers=headers, timeout=10).status_code == 401:
                pending.discard(i)
        assert time.monotonic() - since < WITHIN_S, f"still served on replicas {pending}"
        time.sleep(0.05)


def warm(cluster: Cluster, token: str) -> None:
    """Each replica resolves the token once, so its guardian caches the resolution."""
    for stack in cluster.stacks:
        answer = httpx.post(
            f"{stack.url}/v1/chat/completions",
            json=BODY,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text


def test_a_token_revoked_on_one_replica_is_refused_on_every_replica(cluster: Cluster) -> None:
    token = user_with_token(cluster.stacks[0], "revokee", "user")
    warm(cluster, token)
    started = time.monotonic()
    revoked = run_ctl(
        cluster.stacks[1].runtime / "guardian" / "admin.sock", "tokens", "revoke", token
    )
    assert revoked.returncode == 0, revoked.stderr
    refused_everywhere_within(cluster, token, started)


def test_a_user_deleted_on_one_replica_is_refused_on_every_replica(cluster: Cluster) -> None:
    token = user_with_token(cluster.stacks[0], "leaver", "user")
    warm(cluster, token)
    started = time.monotonic()
    admin = cluster.stacks[2].runtime / "guardian" / "admin.sock"
    deleted = run_ctl(admin, "users", "delete", "leaver", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    refused_everywhere_within(cluster, token, started)
