"""LLM tools as tasks (the MCP tasks extension, SEP-2663), driven by the official client on
a 2026-07-28 connection: a client that declares the extension gets a task handle, follows it
with `tasks/get` to the tool's result, or cancels it with `tasks/cancel` (the provider call
ends); another user gets "not found" for it; a client that does not declare the extension,
and a handshake-era session, get the plain result as before."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict, Field

from tests.e2e.mcp_client import mcp_session
from tests.fakes.base import Behaviour
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack, run_ctl

TASKS = "io.modelcontextprotocol/tasks"
ADMIN = "sg_mcp-tasks-bootstrap-0123456789ab"
REPLY = "a task's answer"


class TaskHandle(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: Literal["task"] = "task"
    task_id: str = Field(alias="taskId")
    status: str


class TaskState(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str = Field(alias="statusMessage")
    ttl_ms: int | None = Field(alias="ttlMs")
    result: dict[str, Any] | None = None


class TaskRef(RequestParams):
    task_id: str = Field(alias="taskId")


class TasksGet(Request[TaskRef, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class TasksCancel(Request[TaskRef, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


async def get_task(client: Client, task_id: str) -> TaskState:
    request = TasksGet(params=TaskRef(taskId=task_id))
    return await client.session.send_request(request, TaskState)


class Tasks(ClientExtension):
    """A client's side of the extension: it resolves a task handle by polling."""

    identifier = TASKS

    def __init__(self) -> None:
        self.handles: list[str] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.resolve)]

    async def resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle.task_id)
        for _ in range(200):
            request = TasksGet(params=TaskRef(taskId=handle.task_id))
            state = await ctx.session.send_request(request, TaskState)
            if state.status != "working":
                assert state.result is not None, state
                return CallToolResult.model_validate(state.result)
            await asyncio.sleep(0.05)
        raise AssertionError("the task never ended")


@contextlib.asynccontextmanager
async def modern(url: str, token: str, tasks: Tasks | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    extensions = [tasks] if tasks is not None else []
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode="auto", extensions=extensions) as client:
            assert client.session.discover_result is not None  # the 2026-07-28 revision
            yield client


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake", reply_text=REPLY).start()
    yield server
    server.stop()


@pytest.fixture
def stack(stack_factory: Callable[..., Stack], fake: FakeOpenAI) -> Stack:
    config = f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "m"
[LLM_PROVIDER.fake_END]
[TOOL.summarize]
provider_type = "llm"
default_provider = "fake"
system_prompt = "Summarize."
[TOOL.summarize_END]
"""
    return stack_factory(env={"SEALGATE_BOOTSTRAP_TOKEN": ADMIN}, config_text=config)


def user_token(stack: Stack, name: str) -> str:
    admin = stack.runtime / "guardian" / "admin.sock"
    added = run_ctl(admin, "users", "add", name, stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    return run_ctl(admin, "tokens", "issue", "--user", name).stdout.strip()


async def test_a_client_that_asks_gets_a_task_and_its_result(stack: Stack) -> None:
    tasks = Tasks()
    async with modern(stack.url, ADMIN, tasks) as client:
        capabilities = client.server_capabilities.extensions or {}
        assert TASKS in capabilities  # server/discover says so
        for tool in ("llm_complete", "summarize"):
            answer = await client.call_tool(tool, {"prompt": "hello"})
            assert not answer.is_error and answer.content[0].text == REPLY
            assert answer.structured_content["provider"] == "fake"
        assert len(tasks.handles) == 2  # both went through a task
        state = await get_task(client, tasks.handles[0])
        assert state.status == "completed" and state.ttl_ms == 86_400_000
        assert "restart" in state.status_message  # tasks say how long they live
        # a tool that is not an LLM call stays a plain call
        health = await client.call_tool("health_check", {})
        assert not health.is_error and len(tasks.handles) == 2
    async with modern(stack.url, ADMIN, None) as plain:
        answer = await plain.call_tool("llm_complete", {"prompt": "hello"})
        assert answer.content[0].text == REPLY
    async with mcp_session(
        stack.url, "http", "legacy", {"Authorization": f"Bearer {ADMIN}"}
    ) as old:
        answer = await old.call_tool("llm_complete", {"prompt": "hello"})
        assert answer.content[0].text == REPLY


async def test_a_task_is_its_owners_and_a_cancel_ends_its_call(
    stack: Stack, fake: FakeOpenAI
) -> None:
    bob = user_token(stack, "bob")
    fake.default = Behaviour(hang_s=30)
    try:
        async with modern(stack.url, ADMIN, Tasks()) as client:
            handle = await client.session.call_tool(
                "llm_complete", {"prompt": "slow"}, allow_claimed=True
            )
            assert isinstance(handle, TaskHandle) and handle.status == "working"
            assert (await get_task(client, handle.task_id)).status == "working"
            async with modern(stack.url, bob, Tasks()) as other:
                with pytest.raises(MCPError, match="not_found"):
                    await get_task(other, handle.task_id)
                with pytest.raises(MCPError, match="not_found"):
                    request = TasksCancel(params=TaskRef(taskId=handle.task_id))
                    await other.session.send_request(request, Result)
            await asyncio.sleep(0.3)  # the provider call is out
            cancel = TasksCancel(params=TaskRef(taskId=handle.task_id))
            await client.session.send_request(cancel, Result)
            state = await get_task(client, handle.task_id)
            assert state.status == "cancelled" and state.result is None
    finally:
        fake.default = Behaviour()
    async with modern(stack.url, ADMIN, None) as client:
        usage = await client.read_resource("sealgate://usage/me")
        assert '"errors":1' in usage.contents[0].text  # billed as a cancelled call
