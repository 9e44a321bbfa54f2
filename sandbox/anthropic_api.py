"""Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

An unchanged Anthropic SDK or Claude Code (`ANTHROPIC_BASE_URL=http://host:port`, the
SealGate token as `x-api-key` or `Authorization: Bearer`) works against these routes. The
request is parsed by `protocol.dialects.anthropic` into the one request every dialect shares
and sent as the sealed `llm.complete` / `llm.stream`: the guardian resolves the model through
`.pyfun` and picks the provider, whatever its wire format. Errors keep Anthropic's shape
(`{"type": "error", "error": {"type", "message"}}`) with fitting statuses.

`anthropic-beta` values are passed to the guardian as a request field, never as a header:
the guardian sends only those on the provider's allowlist and reports the others, which come
back as `x-sealgate-dropped` (and in a stream's `message_delta`, under `sealgate`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from protocol.client import RPCStream
from protocol.contract_results import to_wire
from protocol.dialects import anthropic as dialect
from protocol.dialects.core import Answer, Completion, DialectError, events_of
from protocol.errors import RPCError
from sandbox.caller import caller_of
from sandbox.guardian_link import GuardianLink, stream_result
from sandbox.json_response import JSONResponse
from sandbox.openai_api import (
    printable_ascii,
    receipt_id_header,
    sealgate_extra,
    sealgate_headers,
)
from sandbox.openai_errors import OpenAIErrors
from sandbox.stream_response import StreamingResponse

TOOL = "llm_complete"


def anthropic_error(
    code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    status, kind = dialect.error_of(code, status)
    return JSONResponse(dialect.error_body(kind, message), status_code=status, headers=headers)


def from_rpc_error(exc: RPCError) -> JSONResponse:
    code = exc.code.value
    headers = None
    if code == "rate_limited":
        headers = {"retry-after": str(exc.data.get("retry_after_s", 60))}
    if code == "unauthenticated":
        headers = {"www-authenticate": 'Bearer realm="sealgate"'}
    return anthropic_error(code, exc.message, headers=headers)


class AnthropicErrors(OpenAIErrors):
    """Every refusal under `/v1/messages` (auth, body limits, Host/Origin/content type,
    guardian down) in Anthropic's error shape."""

    def __init__(self, app: Any, prefix: str = "/v1/messages") -> None:
        super().__init__(app, prefix)

    def rewrite(self, status: int, error: dict[str, Any]) -> dict[str, Any]:
        if "code" not in error and isinstance(error.get("type"), str):
            return {"type": "error", "error": error}  # already Anthropic's
        _, kind = dialect.error_of(str(error.get("code") or ""), status)
        return dialect.error_body(kind, str(error.get("message") or ""))


async def _completion(request: Request, counting: bool) -> Completion | JSONResponse:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        return anthropic_error("invalid_request", "the request body is not JSON")
    betas = dialect.betas_of(request.headers.getlist("anthropic-beta"))
    try:
        return dialect.parse_request(body, betas=betas, counting=counting)
    except DialectError as exc:
        return anthropic_error(exc.kind, exc.message)


def _extra_headers(result: dict[str, Any]) -> dict[str, str]:
    headers = sealgate_headers(result)
    dropped = Answer.of(result).dropped
    if dropped:
        text = "; ".join(f"{name}={','.join(values)}" for name, values in sorted(dropped.items()))
        headers["x-sealgate-dropped"] = printable_ascii(text)
    return headers


def _extra(result: dict[str, Any]) -> dict[str, Any]:
    return {**sealgate_extra(result), "dropped": Answer.of(result).dropped}


async def messages(request: Request) -> Response:
    link: GuardianLink = request.app.state.link
    completion = await _completion(request, counting=False)
    if isinstance(completion, JSONResponse):
        return completion
    caller = caller_of(request.scope, request.app.state.proxies)
    message_id = "msg_" + secrets.token_hex(12)
    if completion.stream:
        try:
            stream = link.llm_stream_params(caller, TOOL, completion.to_params())
        except RPCError as exc:
            return from_rpc_error(exc)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = None
        except RPCError as exc:  # nothing sent yet: a plain error response
            await stream.aclose()
            return from_rpc_error(exc)
        renderer = dialect.MessageStream(message_id, completion.model)
        return StreamingResponse(
            _sse(link, stream, first, renderer),
            media_type="text/event-stream",
            headers={
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                **receipt_id_header(first),  # docs/AUDIT.md
            },
        )
    try:
        answer = await link.llm_complete_params(caller, TOOL, completion.to_params())
        result = to_wire(answer)
    except RPCError as exc:
        return from_rpc_error(exc)
    body = dialect.render_message(Answer.of(result), message_id)
    body["sealgate"] = _extra(result)
    return JSONResponse(body, headers=_extra_headers(result))


def _rendered(renderer: dialect.MessageStream, chunk: Any) -> bytes:
    """One guardian chunk's events, encoded as one piece (b"" for none)."""
    events = events_of(chunk if isinstance(chunk, dict) else {})
    return b"".join(data for event in events for data in dialect.encode(renderer.feed(event)))


async def _sse(
    link: GuardianLink, stream: RPCStream, first: Any, renderer: dialect.MessageStream
) -> AsyncIterator[bytes]:
    """Anthropic's event sequence as chunks arrive; a failure after the start is an
    `error` event (the stream has no other way to say it)."""
    started = time.perf_counter()
    failed = True
    try:
        # The opening events and the first chunk's leave in one write, and each later
        # chunk's events in one write: the first text waits behind no write of its own.
        yield b"".join(dialect.encode(renderer.start())) + _rendered(renderer, first)
        while True:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                break
            data = _rendered(renderer, chunk)
            if data:
                yield data
        result = stream.result or {}
        events = renderer.finish(Answer.of(result))
        events[-2][1]["sealgate"] = _extra(result)  # message_delta: what only the end knows
        for data in dialect.encode(events):
            yield data
        failed = False
    except RPCError as exc:
        _, kind = dialect.error_of(exc.code.value)
        for data in dialect.encode(renderer.error(kind, exc.message)):
            yield data
    finally:
        await stream.aclose()  # the client went away or we are done: stop the sealed call
        link.observe_stream(time.perf_counter() - started, stream_result(stream), failed)


async def count_tokens(request: Request) -> Response:
    """The sealed `llm.count_tokens`: Anthropic's own count where the model resolves to a
    provider that speaks Anthropic's wire format (`{"input_tokens": N}`, as Anthropic answers
    it); for any other provider SealGate's documented estimate, not a tokenizer's count: the
    guardian's budget bound (one token per byte of the request, plus framing), so never below
    the truth, marked as an estimate in the body (`sealgate.estimate`) and the
    `x-sealgate-estimate` header."""
    completion = await _completion(request, counting=True)
    if isinstance(completion, JSONResponse):
        return completion
    link: GuardianLink = request.app.state.link
    caller = caller_of(request.scope, request.app.state.proxies)
    try:
        counted = await link.llm_count_tokens(caller, TOOL, completion.to_params())
    except RPCError as exc:
        return from_rpc_error(exc)
    where = {"provider": counted.provider, "model": counted.model}
    if not counted.estimated:
        return JSONResponse(
            {"input_tokens": counted.input_tokens, "sealgate": {"estimate": False, **where}}
        )
    return JSONResponse(
        {
            "input_tokens": counted.input_tokens,
            "sealgate": {"estimate": True, "rule": "one token per byte of the request", **where},
        },
        headers={"x-sealgate-estimate": "bytes"},
    )
