"""Any replica answers (issue 29 item 3): three replicas on one PostgreSQL behind HAProxy,
round robin, no affinity. Every client keeps its session while its requests land on all three:
the official `mcp` client on the handshake revision (`Mcp-Session-Id`) and on 2026-07-28, the
legacy `/sse` transport (its POSTs relayed through the guardians), `mcp-remote`, MCP tasks,
and the `openai` SDK; never "session not found"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.mcp_client import mcp_session
from tests.e2e.test_mcp_stdio import drive
from tests.e2e.test_mcp_tasks import Tasks, get_task
from tests.fakes.providers import FakeOpenAI
from tests.helpers import run_ctl
from tests.node_tools import mcp_remote, missing_reason, node_22
from tests.pg import PostgresServer
from tests.replicas.cluster import Cluster, running_cluster

ADMIN = "sg_replicas-bootstrap-0123456789abcdef"
REPLY = "an answer from any replica"
CALLS = 6  # per session: with the handshake's own requests, each replica sees several

CONFIG = """
[HUB]
max_streams_per_principal = "200"
[HUB_END]
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
[LLM_PROVIDER.fake_END]
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text=REPLY).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(postgres: PostgresServer, fake: FakeOpenAI) -> Iterator[Cluster]:
    with running_cluster(
        postgres, CONFIG.format(base=fake.base), {"SEALGATE_BOOTSTRAP_TOKEN": ADMIN}
    ) as (made, _):
        yield made


class Seen:
    """Every HTTP status a client met, to show no "session not found" was among them."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    async def hook(self, response: Any) -> None:
        self.statuses.append(response.status_code)


def assert_spread(cluster: Cluster, before: dict[str, int]) -> None:
    """Each replica served some of the requests made since `before`."""
    assert cluster.balancer is not None
    after = cluster.balancer.served()
    grown = {name: after[name] - before.get(name, 0) for name in after}
    assert len(grown) == 3 and all(n > 0 for n in grown.values()), grown


async def drive_http(url: str, mode: str) -> list[int]:
    seen = Seen()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx2.AsyncClient(
        headers=headers, timeout=60, event_hooks={"response": [seen.hook]}
    ) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "llm_complete" in names
            for i in range(CALLS):
                answer = await client.call_tool("llm_complete", {"prompt": f"hello {i}"})
                assert not answer.is_error and answer.content[0].text == REPLY
            usage = await client.read_resource("sealgate://usage/me")
            assert '"principal":"admin"' in usage.contents[0].text
    return seen.statuses


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_mcp_sessions_are_answered_by_every_replica(cluster: Cluster, mode: str) -> None:
    assert cluster.balancer is not None
    before = cluster.balancer.served()

    async def sessions() -> list[list[int]]:
        return await asyncio.gather(*(drive_http(cluster.url, mode) for _ in range(3)))

    statuses = [s for run in asyncio.run(sessions()) for s in run]
    assert 404 not in statuses, statuses
    assert_spread(cluster, before)


def test_the_legacy_sse_transport_reaches_its_stream_from_every_replica(cluster: Cluster) -> None:
    assert cluster.balancer is not None
    before = cluster.balancer.served()

    async def session() -> None:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with mcp_session(cluster.url, "sse", "legacy", headers) as client:
            assert "llm_complete" in {t.name for t in (await client.list_tools()).tools}
            for i in range(CALLS):
                answer = await client.call_tool("llm_complete", {"prompt": f"sse {i}"})
                assert not answer.is_error and answer.content[0].text == REPLY

    async def both() -> None:
        await asyncio.wait_for(asyncio.gather(session(), session()), 120)

    asyncio.run(both())
    assert_spread(cluster, before)


def test_an_sse_session_is_not_anothers(cluster: Cluster) -> None:
    """A POST for a stream held on another replica, with another principal's credential,
    gets the SDK's own 404, as for a stream that does not exist."""
    admin_socket = cluster.admin
    added = run_ctl(admin_socket, "users", "add", "mallory", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    mallory = run_ctl(admin_socket, "tokens", "issue", "--user", "mallory").stdout.strip()

    async def attempt() -> list[int]:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx2.AsyncClient(timeout=30) as http:
            async with http.stream("GET", f"{cluster.url}/sse", headers=headers) as stream:
                path = ""
                async for line in stream.aiter_lines():
                    if line.startswith("data: /sse/messages/"):
                        path = line.removeprefix("data: ")
                        break
                body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                answers = []
                for _ in range(3):  # round robin: at least two land on other replicas
                    answer = await http.post(
                        f"{cluster.url}{path}",
                        json=body,
                        headers={"Authorization": f"Bearer {mallory}"},
                    )
                    answers.append(answer.status_code)
                return answers

    assert asyncio.run(attempt()) == [404, 404, 404]


def test_tasks_are_followed_on_any_replica(cluster: Cluster) -> None:
    async def run() -> None:
        tasks = Tasks()
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            transport = streamable_http_client(f"{cluster.url}/mcp", http_client=http)
            async with Client(transport, mode="auto", extensions=[tasks]) as client:
                for i in range(3):
                    answer = await client.call_tool("llm_complete", {"prompt": f"task {i}"})
                    assert answer.content[0].text == REPLY
                for handle in tasks.handles:
                    for _ in range(3):  # each get may land on another replica
                        state = await get_task(client, handle)
                        assert state.status == "completed"
        assert len(tasks.handles) == 3

    asyncio.run(run())


def test_the_openai_sdk_through_the_balancer(cluster: Cluster) -> None:
    client = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key=ADMIN, max_retries=0)
    for _ in range(6):
        answer = client.chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content == REPLY
        parts = client.chat.completions.create(
            model="fake/m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in parts if chunk.choices)
        assert text == REPLY
    # stored Responses state: none is kept anywhere, and every replica says so alike
    answers = {
        httpx.post(
            f"{cluster.url}/v1/responses",
            json={"model": "fake/m", "input": "hi", "previous_response_id": "resp_1"},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
        ).status_code
        for _ in range(3)
    }
    assert answers == {400}


def test_mcp_remote_through_the_balancer(cluster: Cluster, tmp_path: Path) -> None:
    reason = missing_reason()
    if reason is not None:
        pytest.fail(reason)
    node, script = node_22(), mcp_remote()
    assert node is not None and script is not None
    args = [
        str(script),
        f"{cluster.url}/mcp",
        "--transport",
        "http-only",
        "--header",
        "Authorization: Bearer ${SEALGATE_TOKEN}",
    ]
    env = {"MCP_REMOTE_CONFIG_DIR": str(tmp_path), "HOME": str(tmp_path), "SEALGATE_TOKEN": ADMIN}
    for _ in range(2):
        result = drive(node, args, env, tmp_path / "stderr.log")
        assert "llm_complete" in result["tools"]
        assert result["answer"].content[0].text == REPLY and not result["health"].is_error
        assert "not found" not in (tmp_path / "stderr.log").read_text().lower()
