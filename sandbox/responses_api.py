"""OpenAI's Responses API: `POST /v1/responses`.

Codex CLI, the OpenAI Agents SDK and `client.responses.create(...)` work against it with a
SealGate token as the key. The request is parsed by `protocol.dialects.responses` into the one
request every dialect shares and sent as the sealed `llm.complete` / `llm.stream`, so it
reaches any configured provider. SealGate stores no responses (`store: true` and
`previous_response_id` are a clear 400). Errors keep OpenAI's shape, as on the rest of `/v1`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from protocol.client import RPCStream
from protocol.contract_results import to_wire
from protocol.dialects import responses as dialect
from protocol.dialects.core import Answer, DialectError, events_of
from protocol.errors import RPCError
from sandbox.caller import caller_of
from sandbox.guardian_link import GuardianLink, stream_result
from sandbox.json_response import JSONResponse
from sandbox.openai_api import (
    from_rpc_error,
    openai_error,
    receipt_id_header,
    sealgate_extra,
    sealgate_headers,
)
from sandbox.stream_response import StreamingResponse

TOOL = "llm_complete"


def _bad_request(message: str, param: str | None = None) -> JSONResponse:
    return openai_error(400, message, "invalid_request_error", "invalid_params", param)


async def responses(request: Request) -> Response:
    link: GuardianLink = request.app.state.link
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        return _bad_request("the request body is not JSON")
    try:
        completion = dialect.parse_request(body)
    except DialectError as exc:
        return _bad_request(exc.message, exc.param)
    caller = caller_of(request.scope, request.app.state.proxies)
    shell = dialect.Shell(dialect.new_id("resp"), int(time.time()), body)
    if completion.stream:
        try:
            stream = link.llm_stream_params(caller, TOOL, completion.to_params())
        except RPCError as exc:
            return from_rpc_error(exc, model_call=True)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = None
        except RPCError as exc:  # nothing sent yet: a plain error response
            await stream.aclose()
            return from_rpc_error(exc, model_call=True)
        renderer = dialect.ResponseStream(shell, completion.model)
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
        return from_rpc_error(exc, model_call=True)
    rendered = dialect.render_response(Answer.of(result), shell)
    rendered["sealgate"] = sealgate_extra(result)
    return JSONResponse(rendered, headers=sealgate_headers(result))


def _rendered(renderer: dialect.ResponseStream, chunk: Any) -> bytes:
    """One guardian chunk's events, encoded as one piece (b"" for none)."""
    events = events_of(chunk if isinstance(chunk, dict) else {})
    return b"".join(data for event in events for data in dialect.encode(renderer.feed(event)))


async def _sse(
    link: GuardianLink, stream: RPCStream, first: Any, renderer: dialect.ResponseStream
) -> AsyncIterator[bytes]:
    """The Responses event sequence as chunks arrive; a failure after the start is a
    `response.failed` event."""
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
        events[-1][1]["response"]["sealgate"] = sealgate_extra(result)
        for data in dialect.encode(events):
            yield data
        failed = False
    except RPCError as exc:
        for data in dialect.encode(renderer.error(exc.code.value, exc.message)):
            yield data
    finally:
        await stream.aclose()  # the client went away or we are done: stop the sealed call
        link.observe_stream(time.perf_counter() - started, stream_result(stream), failed)
