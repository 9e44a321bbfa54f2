"""The OpenAI-compatible API: `/v1/chat/completions`, `/v1/models` and `/v1/embeddings`.

An unchanged OpenAI SDK (`OpenAI(base_url="http://host:port/v1", api_key=<SealGate token>)`)
works against these routes. Every call becomes one sealed RPC; the guardian picks the
provider, so `model` is resolved by the guardian's configuration. A chat completion is
parsed and rendered by `protocol.dialects.chat`, the translation core every dialect shares.
Errors keep OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with fitting
statuses.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from protocol.client import RPCStream
from protocol.contract_http import ChatRequest
from protocol.contract_results import LlmResult, to_wire
from protocol.dialects import chat as chat_dialect
from protocol.dialects.core import Answer, DialectError, events_of
from protocol.errors import RPCError
from sandbox.caller import caller_of
from sandbox.errors import http_status
from sandbox.guardian_link import GuardianLink, stream_result
from sandbox.json_response import JSONResponse
from sandbox.openai_errors import ERROR_TYPE
from sandbox.stream_response import StreamingResponse


def openai_error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code or kind}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_rpc_error(exc: RPCError, model_call: bool = False) -> JSONResponse:
    """`model_call`: the request named a model, so "not found" is about it, as OpenAI says."""
    code = exc.code.value
    param = None
    if model_call and code == "not_found":
        code, param = "model_not_found", "model"
    headers = None
    if code == "rate_limited":
        headers = {"retry-after": str(exc.data.get("retry_after_s", 60))}
    if code == "unauthenticated":
        headers = {"www-authenticate": 'Bearer realm="sealgate"'}
    return openai_error(
        http_status(exc.code.value),
        exc.message,
        ERROR_TYPE.get(code, "api_error"),
        code,
        param,
        headers=headers,
    )


def _bad_request(message: str, param: str | None = None) -> JSONResponse:
    return openai_error(400, message, "invalid_request_error", "invalid_params", param)


async def _json_body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: nesting past what json parses
        return _bad_request("the request body is not JSON")
    if not isinstance(body, dict):
        return _bad_request("the request body must be a JSON object")
    return body


def _chat_request(body: dict[str, Any]) -> ChatRequest | JSONResponse:
    """The body as `ChatRequest` (`protocol.dialects.chat.check_request`), or OpenAI's 400
    naming the field."""
    try:
        return chat_dialect.check_request(body)
    except DialectError as exc:
        return _bad_request(exc.message, exc.param)


def sealgate_headers(result: Mapping[str, Any]) -> dict[str, str]:
    """What the hub knows about a completed call, as `x-sealgate-*` response headers, so an
    OpenAI SDK user reads provider, fallback path, tokens and cost from the raw response (as
    LiteLLM does with its own prefix). Streams carry the same map in the final chunk instead.
    A model without a cost entry has no known cost: the body says `null`, and the cost header
    is left out rather than claiming 0.
    """
    usage = result.get("usage") or {}
    path = ",".join(
        f"{step.get('provider', '?')}:{step.get('error', '?')}"
        for step in result.get("fallback_path") or []
    )
    headers = {
        "x-sealgate-provider": str(result.get("provider", "")),
        "x-sealgate-model": str(result.get("model", "")),
        "x-sealgate-fallback-path": path,
        "x-sealgate-input-tokens": str(usage.get("input_tokens", 0)),
        "x-sealgate-output-tokens": str(usage.get("output_tokens", 0)),
        "x-sealgate-latency-ms": str(result.get("latency_ms", "")),
    }
    if result.get("cost_usd") is not None:
        headers["x-sealgate-cost-usd"] = f"{float(result['cost_usd']):.8f}"
    headers = {k: printable_ascii(v) for k, v in headers.items()}
    return {**headers, **_receipt_headers(result)}


def printable_ascii(value: str) -> str:
    """Header values are latin-1 on the wire: only printable ASCII of provider text is kept
    (checked whole first: nearly every value is already, and a loop per character is not
    free on every answer)."""
    if value.isascii() and value.isprintable():
        return value
    return "".join(c for c in value if " " <= c <= "~")


_RECEIPT = re.compile(r"[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{1,200}")


def _receipt_headers(result: Mapping[str, Any]) -> dict[str, str]:
    """`SealGate-Receipt` and its id (docs/AUDIT.md): checked whole, not filtered by
    character (a receipt is base64url, the id hex)."""
    receipt, receipt_id = result.get("receipt"), result.get("receipt_id")
    if not isinstance(receipt, str) or not isinstance(receipt_id, str):
        return {}
    if not _RECEIPT.fullmatch(receipt) or not receipt_id.isascii() or not receipt_id.isalnum():
        return {}
    return {"sealgate-receipt-id": receipt_id, "sealgate-receipt": receipt}


def _output_tokens(result: LlmResult) -> int:
    output = result.usage.output_tokens
    return output if isinstance(output, int) else 0


def receipt_id_header(first: Any) -> dict[str, str]:
    """`SealGate-Receipt-Id` from a stream's first chunk (docs/AUDIT.md)."""
    receipt_id = first.get("receipt_id") if isinstance(first, dict) else None
    if not isinstance(receipt_id, str) or not receipt_id.isascii() or not receipt_id.isalnum():
        return {}
    return {"sealgate-receipt-id": receipt_id[:128]}


def sealgate_extra(result: Mapping[str, Any]) -> dict[str, Any]:
    """The `sealgate` field of a response body (and of a stream's final chunk), from the
    result as it crossed the socket (`to_wire`)."""
    usage = result.get("usage") or {}
    return {
        "provider": result.get("provider"),
        "model": result.get("model"),
        "fallback_path": result.get("fallback_path") or [],
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cost_usd": result.get("cost_usd"),
        "latency_ms": result.get("latency_ms"),
        **({"receipt_id": result["receipt_id"]} if result.get("receipt_id") else {}),
        **({"receipt": result["receipt"]} if result.get("receipt") else {}),
    }


async def chat_completions(request: Request) -> Response:
    """Parsed and rendered by `protocol.dialects.chat`, sent as the sealed `llm.complete` /
    `llm.stream` like every other dialect."""
    link: GuardianLink = request.app.state.link
    body = await _json_body(request)
    if isinstance(body, JSONResponse):
        return body
    chat = _chat_request(body)
    if isinstance(chat, JSONResponse):
        return chat
    completion = chat_dialect.parse_request(chat)
    params = completion.to_params()
    caller = caller_of(request.scope, request.app.state.proxies)
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    if completion.stream:
        try:
            # Opening the stream refuses at once a request that cannot be sent (lone
            # surrogates, integers past 64 bits) or a guardian link that just dropped.
            stream = link.llm_stream_params(caller, "llm_complete", params)
        except RPCError as exc:
            return from_rpc_error(exc, model_call=True)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            first = None
        except RPCError as exc:  # nothing sent yet: a plain error response
            await stream.aclose()
            return from_rpc_error(exc, model_call=True)
        renderer = chat_dialect.ChunkStream(completion_id, created, chat.model)
        return StreamingResponse(
            _sse(link, stream, first, renderer, chat_dialect.include_usage(chat)),
            media_type="text/event-stream",
            headers={
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                # the receipt's id before any text: a caller whose stream is cut still has it
                **receipt_id_header(first),
            },
        )
    try:
        result = await link.llm_complete_params(caller, "llm_complete", params)
    except RPCError as exc:
        return from_rpc_error(exc, model_call=True)
    wire = to_wire(result)
    answer = chat_dialect.render_completion(Answer.of(wire), completion_id, created)
    return JSONResponse(
        {**answer, "sealgate": sealgate_extra(wire)}, headers=sealgate_headers(wire)
    )


async def _sse(
    link: GuardianLink,
    stream: RPCStream,
    first: Any,
    renderer: chat_dialect.ChunkStream,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """Chunks as they arrive; a failure after the first is an explicit error event."""
    started = time.perf_counter()
    failed = True
    ended: LlmResult | None = None
    try:
        # The opening chunk (the role) and the first text leave in one write: the first
        # text does not wait behind a write and a wakeup of its own.
        yield renderer.start() + renderer.feed(events_of(_as_map(first)))
        while True:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                break
            data = renderer.feed(events_of(_as_map(chunk)))
            if data:
                yield data
        ended = stream_result(stream)
        wire = to_wire(ended) if ended is not None else None
        answer = Answer.of(wire) if wire is not None else None
        extra = sealgate_extra(wire) if wire is not None else None
        for data in renderer.finish(answer, extra, include_usage):
            yield data
        failed = False
    except RPCError as exc:
        kind = ERROR_TYPE.get(exc.code.value, "api_error")
        yield renderer.error(exc.message, kind, exc.code.value)
    finally:
        await stream.aclose()  # the client went away or we are done: stop the sealed call
        link.observe_stream(time.perf_counter() - started, ended, failed)


def _as_map(chunk: Any) -> dict[str, Any]:
    """A guardian chunk, or nothing (none yet, or not a map)."""
    return chunk if isinstance(chunk, dict) else {}


async def models(request: Request) -> Response:
    link: GuardianLink = request.app.state.link
    caller = caller_of(request.scope, request.app.state.proxies)
    try:
        info = await link.models_info(caller)
    except RPCError as exc:
        return from_rpc_error(exc)
    data = [
        {"id": m["id"], "object": "model", "created": 0, "owned_by": m["provider"]}
        for m in info.models
        if m.get("provider_active")
    ]
    return JSONResponse({"object": "list", "data": data})


async def embeddings(request: Request) -> Response:
    """`/v1/embeddings`: float or base64 (what the OpenAI SDK asks for by default)."""
    link: GuardianLink = request.app.state.link
    body = await _json_body(request)
    if isinstance(body, JSONResponse):
        return body
    unknown = sorted(set(body) - {"model", "input", "encoding_format", "user", "dimensions"})
    if unknown:
        return _bad_request(f"unsupported parameter(s): {', '.join(unknown)}", unknown[0])
    if body.get("dimensions") is not None:
        return _bad_request("'dimensions' is not supported", "dimensions")
    texts = body.get("input")
    if not isinstance(body.get("model"), str) or not (
        isinstance(texts, str)
        or (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts))
    ):
        return _bad_request(
            "'model' and 'input' (a string or a list of strings) are required", "input"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        return _bad_request("encoding_format is 'float' or 'base64'", "encoding_format")
    caller = caller_of(request.scope, request.app.state.proxies)
    try:
        result = await link.llm_embed(caller, body["model"], texts)
    except RPCError as exc:
        return from_rpc_error(exc, model_call=True)
    data = []
    for index, vector in enumerate(result.data):
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = result.usage.input_tokens
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": result.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        headers=_receipt_headers(to_wire(result)),
    )
