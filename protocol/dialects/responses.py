"""OpenAI's Responses API (`POST /v1/responses`) as a client dialect.

`parse_request` turns a Responses request into the one `Completion`; `render_response` and
`ResponseStream` render the guardian's answer as a `Response` and as the Responses event
sequence (`response.created`, `response.in_progress`, `response.output_item.added`,
`response.content_part.added`, `response.output_text.delta`, `...done`,
`response.function_call_arguments.delta`, `...done`, `response.output_item.done`, then
`response.completed`, `response.incomplete` or `response.failed`).

SealGate stores no responses: `store: true` and `previous_response_id` are refused with a
clear 400 (an omitted `store` is taken as false); the whole conversation comes in `input`.
Reasoning items a client sends back are left out (no provider here can read another's), and
`reasoning`, `include: ["reasoning.encrypted_content"]`, `prompt_cache_key`, `metadata`,
`client_metadata`, `user`, `parallel_tool_calls` and `truncation` are accepted and not passed
on. Built-in tools (web search, file search, shell, ...) and other item types are refused
by name.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

from protocol.dialects.core import (
    Answer,
    Completion,
    DialectError,
    Event,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)

#: Fields read here.
USED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "temperature",
        "stream",
        "store",
        "previous_response_id",
        "text",
        "include",
    }
)
#: Fields accepted and not passed on: hints a gateway may leave (see the module's text).
IGNORED = frozenset(
    {
        "reasoning",
        "prompt_cache_key",
        "metadata",
        "client_metadata",
        "user",
        "parallel_tool_calls",
        "truncation",
        "service_tier",
        "safety_identifier",
    }
)
INCLUDES = frozenset({"reasoning.encrypted_content"})
_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def parse_request(body: Any) -> Completion:
    if not isinstance(body, dict):
        raise DialectError("the request body must be a JSON object")
    unknown = sorted(set(body) - USED - IGNORED)
    if unknown:
        raise DialectError(f"unsupported parameter: {unknown[0]}", param=unknown[0])
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DialectError("'model' is required", param="model")
    if body.get("store") is True:
        raise DialectError(
            "SealGate stores no responses: send store: false and the whole conversation in 'input'",
            param="store",
        )
    if body.get("previous_response_id") is not None:
        raise DialectError(
            "previous_response_id is not supported: SealGate stores no responses; send the"
            " whole conversation in 'input'",
            param="previous_response_id",
        )
    include = body.get("include") or []
    if not isinstance(include, list) or set(include) - INCLUDES:
        raise DialectError(
            f"include: only {', '.join(sorted(INCLUDES))} is accepted", param="include"
        )
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and not (
        isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
    ):
        raise DialectError("max_output_tokens: a positive integer", param="max_output_tokens")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool)
    ):
        raise DialectError("temperature: must be a number", param="temperature")
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise DialectError("stream: must be a boolean", param="stream")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise DialectError("instructions: must be a string", param="instructions")
    return Completion(
        model=model,
        messages=_input(body.get("input")),
        system=instructions or None,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens,
        temperature=float(temperature) if temperature is not None else None,
        response_format=_format(body.get("text")),
        stream=bool(stream),
    )


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as OpenAI chat parts (text and image_url)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise DialectError(f"{where}.content: must be a string or a list of parts", param="input")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part, dict):
            if not isinstance(part.get("text"), str):
                raise DialectError(f"{where}: a {kind} part needs 'text'", param="input")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part, dict):
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image" and isinstance(part, dict):
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise DialectError(
                    f"{where}: an input_image needs image_url (a data URL or an https URL;"
                    " file_id needs stored files, which SealGate does not keep)",
                    param="input",
                )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise DialectError(
                f"{where}: content part type {kind!r} is not supported", param="input"
            )
    return parts


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _input(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise DialectError("'input' must be a string or a non-empty list of items", param="input")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise DialectError(f"{where}: must be an object", param="input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise DialectError(
                    f"{where}.role: must be user, assistant, system or developer", param="input"
                )
            content = _content(_text_parts(item.get("content"), where))
            if role == "assistant" and not isinstance(content, str):
                raise DialectError(f"{where}: an assistant message holds text only", param="input")
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
            if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
                raise DialectError(f"{where}: a function_call needs a call_id", param="input")
            if not isinstance(name, str) or not isinstance(arguments, str):
                raise DialectError(
                    f"{where}: a function_call needs name and arguments", param="input"
                )
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            last = out[-1] if out else None
            if (
                last is not None
                and last["role"] == "assistant"
                and isinstance(last["content"], str)
            ):
                last.setdefault("tool_calls", []).append(call)  # one turn, several calls
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise DialectError(
                    f"{where}: a function_call_output needs a call_id", param="input"
                )
            if isinstance(output, list):
                output = _content(_text_parts(output, where))
            if not isinstance(output, str):
                raise DialectError(
                    f"{where}: a function_call_output's output must be text", param="input"
                )
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # another model's reasoning: no provider here can use it
        else:
            raise DialectError(f"{where}: item type {kind!r} is not supported", param="input")
    if not out:
        raise DialectError("'input' holds no message", param="input")
    return out


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise DialectError("tools: must be a list", param="tools")
    out = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function" or not isinstance(tool, dict):
            raise DialectError(
                f"tools[{index}]: tool type {kind!r} is not supported (function tools only)",
                param="tools",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise DialectError(f"tools[{index}]: a function tool needs a name", param="tools")
        function: dict[str, Any] = {"name": name}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("parameters"), dict):
            function["parameters"] = tool["parameters"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out or None


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice if isinstance(choice, str) else None
    if (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance(choice.get("name"), str)
    ):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise DialectError(
        "tool_choice: 'auto', 'none', 'required' or {'type': 'function', 'name'}",
        param="tool_choice",
    )


def _format(text: Any) -> dict[str, Any] | None:
    """`text.format` as chat's response_format (`verbosity` is a hint)."""
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
        schema = {"name": str(fmt.get("name") or "answer"), "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise DialectError("text.format: 'text', 'json_object' or 'json_schema'", param="text")


# rendering -----------------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    )
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id or new_id("call"),
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
        "status": status,
    }


class Shell:
    """The fields of a `Response` beside its output: echoed from the request, as OpenAI
    does."""

    def __init__(self, response_id: str, created_at: int, body: dict[str, Any]) -> None:
        self.response_id = response_id
        self.created_at = created_at
        self.body = body

    def response(
        self, model: str, status: str, output: list[dict[str, Any]], answer: Answer | None
    ) -> dict[str, Any]:
        body = self.body
        incomplete = None
        if answer is not None and answer.finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        elif answer is not None and answer.finish_reason == "content_filter":
            status, incomplete = "incomplete", {"reason": "content_filter"}
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": model,
            "output": output,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "temperature": body.get("temperature"),
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "top_p": None,
            "store": False,
            "text": {"format": {"type": "text"}},
            "metadata": body.get("metadata") or {},
            "usage": _usage(answer) if answer is not None else None,
        }


def render_response(answer: Answer, shell: Shell) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if answer.text or not answer.tool_calls:
        output.append(_message_item(new_id("msg"), answer.text))
    for call in answer.tool_calls:
        output.append(_call_item(new_id("fc"), call))
    return shell.response(answer.model, "completed", output, answer)


Sse = tuple[str, dict[str, Any]]


class ResponseStream:
    """Renders one stream: `start()`, `feed()` per event, then `finish()` or `error()`; one
    output item open at a time, each closed (its `...done` events) before the next."""

    def __init__(self, shell: Shell, model: str) -> None:
        self.shell = shell
        self.model = model
        self._sequence = 0
        self._output: list[dict[str, Any]] = []  # closed items
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._text: list[str] = []
        self._calls: dict[int, int] = {}  # tool call index -> its output index

    def _event(self, kind: str, **fields: Any) -> Sse:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return kind, data

    def start(self) -> list[Sse]:
        response = self.shell.response(self.model, "in_progress", [], None)
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def feed(self, event: Event) -> list[Sse]:
        if isinstance(event, TextDelta):
            out, item = self._message()
            self._text.append(event.text)
            out.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=len(self._output),
                    content_index=0,
                    delta=event.text,
                    logprobs=[],
                )
            )
            return out
        if isinstance(event, ToolCallDelta):
            return self._tool(event)
        return []  # thinking has no place in this dialect's stream

    def _message(self) -> tuple[list[Sse], dict[str, Any]]:
        """The open message item, opened (and the item before it closed) if need be."""
        if self._open is not None and self._open["type"] == "message":
            return [], self._open
        out = self._closed()
        item = _message_item(new_id("msg"), "", status="in_progress")
        self._open = item
        index = len(self._output)
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            *out,
            self._event("response.output_item.added", output_index=index, item=dict(item)),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
        ], item

    def _tool(self, event: ToolCallDelta) -> list[Sse]:
        out: list[Sse] = []
        if event.index not in self._calls:
            out = self._closed()
            call = ToolCall(id=event.id, name=event.name, arguments="")
            item = _call_item(new_id("fc"), call, status="in_progress")
            self._open = item
            self._calls[event.index] = len(self._output)
            out.append(
                self._event(
                    "response.output_item.added", output_index=len(self._output), item=dict(item)
                )
            )
        else:
            open_item = self._open
            if open_item is None or self._calls[event.index] != len(self._output):
                return out  # a fragment of a call already closed: no provider interleaves them
            item = open_item
        if event.arguments:
            item["arguments"] += event.arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=len(self._output),
                    delta=event.arguments,
                )
            )
        return out

    def _closed(self) -> list[Sse]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = len(self._output)
        out: list[Sse] = []
        if item["type"] == "message":
            text = "".join(self._text)
            self._text = []
            part = {"type": "output_text", "text": text, "annotations": []}
            out += [
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                ),
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                ),
            ]
            item = {**item, "status": "completed", "content": [part]}
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
            item = {**item, "status": "completed"}
        self._output.append(item)
        return [*out, self._event("response.output_item.done", output_index=index, item=item)]

    def finish(self, answer: Answer) -> list[Sse]:
        out = self._closed()
        if not self._output:  # an empty answer is still one (empty) message
            out += self._message()[0]
            out += self._closed()
        response = self.shell.response(
            answer.model or self.model, "completed", self._output, answer
        )
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return [*out, self._event(kind, response=response)]

    def error(self, code: str, message: str) -> list[Sse]:
        """The stream failed after it started: `response.failed`, its error named."""
        response = self.shell.response(self.model, "failed", self._output, None)
        kind = "rate_limit_exceeded" if code == "rate_limited" else "server_error"
        response["error"] = {"code": kind, "message": message}
        return [self._event("response.failed", response=response)]


def encode(events: list[Sse]) -> Iterator[bytes]:
    """Server-sent events with `event:` and `data:` lines, as OpenAI sends them."""
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
