"""The MCP tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) for the LLM tools.

A 2026-07-28 client that declares the extension on a `tools/call` of `llm_complete` or of a
`[TOOL.x]` LLM tool gets a task handle (`resultType: "task"`) instead of waiting; it follows
the task with `tasks/get` and may end it with `tasks/cancel`. The task itself lives in the
guardian (`tasks.start`, `tasks.get`, `tasks.cancel`), keyed by the caller's principal, so
any sandbox replica answers for it and another user gets "not found". A client that does not
declare the extension, and every handshake-era session, gets the plain result as before.

A failed call is a completed task whose result is the tool's error result (`isError`), as
the tool would have answered: the specification keeps `failed` for JSON-RPC errors.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any, Literal

from fastmcp import Context
from fastmcp.server.extensions import (
    MethodBinding,
    ServerExtension,
    ToolCallContinuation,
    ToolCallOutcome,
)
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    INVALID_PARAMS,
    CallToolRequestParams,
    RequestParams,
    Result,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict, Field

from protocol.contract_results import TaskInfo, to_wire
from protocol.errors import ErrorCode, RPCError
from sandbox.errors import SealedToolError
from sandbox.guardian_link import Caller, GuardianLink
from sandbox.hub_compat import drop_empty, first_given

TASKS = "io.modelcontextprotocol/tasks"
#: JSON-RPC error code of a task the caller does not hold (the SDK's "invalid params").
NOT_FOUND_CODE = INVALID_PARAMS


class TaskRef(RequestParams):
    task_id: str = Field(alias="taskId", max_length=64)


class TaskUpdate(TaskRef):
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


class CreateTaskResult(Result):
    """What `tools/call` answers when it starts a task (SEP-2663's `CreateTaskResult`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: Literal["task"] = "task"


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat().replace("+00:00", "Z")


def task_fields(info: TaskInfo) -> dict[str, Any]:
    """The specification's `Task` from the guardian's state (times as ISO 8601)."""
    status = "completed" if info.status == "failed" else info.status
    return {
        "taskId": info.task_id,
        "status": status,
        "statusMessage": info.status_message,
        "createdAt": iso(float(info.created_at)),
        "lastUpdatedAt": iso(float(info.updated_at)),
        "ttlMs": info.ttl_ms,
        "pollIntervalMs": info.poll_interval_ms,
    }


def detailed(info: TaskInfo) -> dict[str, Any]:
    """`tasks/get`'s answer: the task, with its tool result once it has one."""
    task: dict[str, Any] = {"resultType": "complete", **task_fields(info)}
    if info.result:
        data = to_wire(info.result)
        task["result"] = {
            "content": [{"type": "text", "text": info.result.text}],
            "structuredContent": data,
            "isError": False,
        }
    elif info.error:
        refusal = SealedToolError(ErrorCode(info.error.code), info.error.message)
        task["result"] = {
            "content": [{"type": "text", "text": str(refusal)}],
            "structuredContent": {"error": refusal.to_wire()},
            "isError": True,
        }
    return task


def asks_for_tasks(context: Context) -> bool:
    """Whether this request declares the extension in its per-request capabilities, on a
    2026-07-28 connection (a task handle cannot be delivered on a handshake-era one)."""
    request = context.request_context
    if request is None or request.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = (request.meta or {}).get(CLIENT_CAPABILITIES_META_KEY)
    extensions = capabilities.get("extensions") if isinstance(capabilities, dict) else None
    return isinstance(extensions, dict) and isinstance(extensions.get(TASKS), dict)


class SealGateTasks(ServerExtension):
    """Runs the LLM tools as guardian tasks for clients that ask for the extension."""

    identifier = TASKS

    def __init__(
        self, link: GuardianLink, caller: Callable[[], Caller], llm_tools: Callable[[], set[str]]
    ) -> None:
        self.link = link
        self.caller = caller
        self.llm_tools = llm_tools

    def methods(self) -> Sequence[MethodBinding]:
        return (
            MethodBinding("tasks/get", TaskRef, self.get),
            MethodBinding("tasks/update", TaskUpdate, self.update),
            MethodBinding("tasks/cancel", TaskRef, self.cancel),
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, context: Context, call_next: ToolCallContinuation
    ) -> ToolCallOutcome:
        if params.name not in self.llm_tools() or not asks_for_tasks(context):
            return await call_next()
        arguments = drop_empty(params.arguments or {})
        prompt = arguments.get("prompt")
        if not isinstance(prompt, str):
            raise SealedToolError(
                ErrorCode.INVALID_PARAMS, f"missing parameter(s) for {params.name}: prompt"
            )
        options = {
            "provider": first_given(arguments.get("provider"), arguments.get("provider_name")),
            "model": arguments.get("model"),
            "max_tokens": arguments.get("max_tokens"),
            "temperature": arguments.get("temperature"),
        }
        if params.name == "llm_complete":
            options["system"] = arguments.get("system")
        try:
            info = await self.link.tasks_start(self.caller(), params.name, prompt, **options)
        except RPCError as exc:
            raise SealedToolError.of(exc) from None
        return CreateTaskResult(**task_fields(info))

    async def get(self, ctx: Any, params: TaskRef) -> dict[str, Any]:
        return detailed(await self._call(self.link.tasks_get, params.task_id))

    async def cancel(self, ctx: Any, params: TaskRef) -> dict[str, Any]:
        await self._call(self.link.tasks_cancel, params.task_id)
        return {"resultType": "complete"}

    async def update(self, ctx: Any, params: TaskUpdate) -> dict[str, Any]:
        """No SealGate task asks for input: the task must exist, the responses are ignored
        (as the specification says of responses to keys not outstanding)."""
        await self._call(self.link.tasks_get, params.task_id)
        return {"resultType": "complete"}

    async def _call(self, method: Any, task_id: str) -> TaskInfo:
        try:
            info: TaskInfo = await method(self.caller(), task_id)
        except RPCError as exc:
            raise MCPError(NOT_FOUND_CODE, f"{exc.code.value}: {exc.message}") from None
        return info
