"""One fake per wire format, each following its provider's documented API."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import OWN_USAGE, Behaviour, FakeServer

TOOL_ARGS = {"city": "Paris"}


def fake_vector(text: str) -> list[float]:
    """A small, deterministic embedding (exact in float32)."""
    return [float(len(text)), 0.5, -1.0, float(sum(map(ord, text)) % 7)]


def wants_tool_call(body: dict[str, Any], tools_key: str = "tools") -> str | None:
    """The first tool's name when the caller offers tools and has no tool result yet."""
    tools = body.get(tools_key) or []
    if not tools:
        return None
    text = json.dumps(body.get("messages") or body.get("contents") or [])
    if '"tool"' in text or "tool_result" in text or "functionResponse" in text:
        return None
    first = tools[0]
    if "function" in first:
        return str(first["function"]["name"])
    if "functionDeclarations" in first:
        return str(first["functionDeclarations"][0]["name"])
    name = first.get("name")
    return name if isinstance(name, str) else None


#: What Anthropic's count_tokens takes (MessageCountTokensParams).
COUNT_TOKENS_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "context_management",
        "output_config",
        "mcp_servers",
        "output_format",
    }
)


def fake_token_count(body: dict[str, Any]) -> int:
    """The fake tokenizer: one token per word of the system prompt, messages and tools as
    JSON, plus 3 per message (deterministic, and unlike SealGate's estimate)."""
    counted = {k: body.get(k) for k in ("system", "messages", "tools") if body.get(k)}
    return len(json.dumps(counted).split()) + 3 * len(body.get("messages") or [])


def stopped_at(text: str, stop_sequences: list[str]) -> tuple[str, str | None]:
    """The text up to the first stop sequence in it, and that sequence (Anthropic's
    `stop_sequence`), or the whole text and None."""
    found = [(text.find(s), s) for s in stop_sequences if s and s in text]
    if not found:
        return text, None
    at, matched = min(found)
    return text[:at], matched


def _event(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


THINKING = {"type": "thinking", "thinking": "Let me think.", "signature": "fake-signature"}


def _thinking_events(index: int) -> list[bytes]:
    """THINKING as Anthropic streams it: start, a thinking delta, the signature, stop."""
    deltas = [
        {"type": "thinking_delta", "thinking": THINKING["thinking"]},
        {"type": "signature_delta", "signature": THINKING["signature"]},
    ]
    start = {"type": "thinking", "thinking": "", "signature": ""}
    return [
        _event(
            {"type": "content_block_start", "index": index, "content_block": start},
            "content_block_start",
        ),
        *(
            _event(
                {"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta"
            )
            for d in deltas
        ),
        _event({"type": "content_block_stop", "index": index}, "content_block_stop"),
    ]


class FakeAnthropic(FakeServer):
    """Anthropic Messages API: POST /v1/messages, x-api-key, anthropic-version."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("x-api-key")

    def error_body(self, status: int, message: str) -> Any:
        return {"type": "error", "error": {"type": "api_error", "message": message}}

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/messages/count_tokens`: Anthropic's `MessageTokensCount`
        (`{"input_tokens": N}`), N by `fake_token_count`. Like Anthropic, it refuses a field
        count_tokens does not take (max_tokens, stream, ...) and a request without model and
        messages."""
        _, recorded, early = await self.preamble(request)
        if early is not None:
            return early
        body = recorded.body if isinstance(recorded.body, dict) else {}
        extra = sorted(set(body) - COUNT_TOKENS_FIELDS)
        missing = [name for name in ("model", "messages") if name not in body]
        if extra or missing:
            message = f"{extra[0]}: Extra inputs are not permitted" if extra else ""
            message = message or f"{missing[0]}: Field required"
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
            return web.json_response(body, status=400)
        return web.json_response({"input_tokens": fake_token_count(body)})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        behaviour, recorded, early = await self.preamble(request)
        if early is not None:
            return early
        body = recorded.body
        text = self.text_for(behaviour)
        model = body.get("model", "claude-test")
        tool = wants_tool_call(body)
        if tool:
            block = {"type": "tool_use", "id": "toolu_fake_1", "name": tool, "input": TOOL_ARGS}
            if not body.get("stream"):
                return web.json_response(
                    {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [block],
                        "stop_reason": "tool_use",
                        "stop_sequence": None,
                        "usage": {"input_tokens": 12, "output_tokens": 7},
                    }
                )
            arguments = json.dumps(TOOL_ARGS)
            message = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            }
            events = [
                _event({"type": "message_start", "message": message}, "message_start"),
                _event(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {**block, "input": {}},
                    },
                    "content_block_start",
                ),
                _event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": arguments[:6]},
                    },
                    "content_block_delta",
                ),
                _event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": arguments[6:]},
                    },
                    "content_block_delta",
                ),
                _event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                _event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                        "usage": {"output_tokens": 7},
                    },
                    "message_delta",
                ),
                _event({"type": "message_stop"}, "message_stop"),
            ]
            return await self.sse(request, behaviour, events)
        # a stop sequence in the text: the text ends before it, and the reply says which
        text, matched = stopped_at(text, body.get("stop_sequences") or [])
        stop = {"stop_reason": "stop_sequence" if matched else "end_turn", "stop_sequence": matched}
        # extended thinking asked for: a thinking block (with its signature) comes first
        thinking = [THINKING] if body.get("thinking", {}).get("type") == "enabled" else []
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [*thinking, {"type": "text", "text": text}],
                    **stop,
                    "usage": {"input_tokens": 12, "output_tokens": 7},
                }
            )
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        }
        events = [_event({"type": "message_start", "message": message}, "message_start")]
        if thinking:
            events += _thinking_events(0)
        text_at = len(thinking)
        events += [
            _event(
                {
                    "type": "content_block_start",
                    "index": text_at,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            _event({"type": "ping"}, "ping"),
        ]
        for chunk in self.chunks_of(text):
            events.append(
                _event(
                    {
                        "type": "content_block_delta",
                        "index": text_at,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                    "content_block_delta",
                )
            )
        events += [
            _event({"type": "content_block_stop", "index": text_at}, "content_block_stop"),
            _event(
                {
                    "type": "message_delta",
                    "delta": stop,
                    "usage": {"output_tokens": 7},
                },
                "message_delta",
            ),
            _event({"type": "message_stop"}, "message_stop"),
        ]
        return await self.sse(request, behaviour, events)


class FakeGemini(FakeServer):
    """Gemini: POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self.generate)

    async def embed(self, request: web.Request, recorded: Any) -> web.StreamResponse:
        vectors = [
            {"values": fake_vector(r["content"]["parts"][0]["text"])}
            for r in recorded.body.get("requests", [])
        ]
        return web.json_response({"embeddings": vectors})

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key")

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message, "status": "FAKE"}}

    @staticmethod
    def _response(text: str, model: str, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if finish:
            candidate["finishReason"] = finish
        return {
            "candidates": [candidate],
            "modelVersion": model,
            "usageMetadata": {
                "promptTokenCount": 9,
                "candidatesTokenCount": 5,
                "totalTokenCount": 14,
            },
        }

    async def generate(self, request: web.Request) -> web.StreamResponse:
        behaviour, recorded, early = await self.preamble(request)
        if early is not None:
            return early
        model, _, operation = request.match_info["call"].partition(":")
        if operation == "batchEmbedContents":
            return await self.embed(request, recorded)
        config = (recorded.body or {}).get("generationConfig") or {}
        # Gemini ends the text before a stop sequence and says only STOP
        text, _ = stopped_at(self.text_for(behaviour), config.get("stopSequences") or [])
        tool = wants_tool_call(recorded.body or {})
        if tool:
            reply = {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [{"functionCall": {"name": tool, "args": TOOL_ARGS}}],
                        },
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "modelVersion": model,
                "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5},
            }
            if operation == "generateContent":
                return web.json_response(reply)
            return await self.sse(request, behaviour, [_event(reply)])
        if operation == "generateContent":
            return web.json_response(self._response(text, model, "STOP"))
        if operation != "streamGenerateContent" or request.query.get("alt") != "sse":
            return web.json_response(self.error_body(404, "unknown operation"), status=404)
        chunks = self.chunks_of(text)
        events = [
            _event(self._response(c, model, "STOP" if i == len(chunks) - 1 else None))
            for i, c in enumerate(chunks)
        ]
        return await self.sse(request, behaviour, events)


class FakeOpenAI(FakeServer):
    """OpenAI-compatible chat completions: POST /v1/chat/completions, Bearer key."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        behaviour, recorded, early = await self.preamble(request)
        if early is not None:
            return early
        texts = recorded.body.get("input")
        texts = texts if isinstance(texts, list) else [texts]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t)}
            for i, t in enumerate(texts)
        ]
        reply = {"object": "list", "data": data, "model": recorded.body["model"]}
        usage = {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)}
        return web.json_response(_with_usage(reply, behaviour, usage))

    def key_of(self, request: web.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else None

    async def _tool_call(
        self,
        request: web.Request,
        behaviour: Behaviour,
        body: dict[str, Any],
        tool: str,
        model: str,
        created: int,
    ) -> web.StreamResponse:
        return await _openai_tool_call(self, request, behaviour, body, tool, model, created)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        behaviour, recorded, early = await self.preamble(request)
        if early is not None:
            return early
        body = recorded.body
        stop = body.get("stop") or []
        # OpenAI ends the text before a stop sequence and says only finish_reason "stop"
        text, _ = stopped_at(self.text_for(behaviour), [stop] if isinstance(stop, str) else stop)
        model = body.get("model", "fake-model")
        created = int(time.time())
        tool = wants_tool_call(body)
        if tool:
            return await self._tool_call(request, behaviour, body, tool, model, created)
        own_usage = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
        if not body.get("stream"):
            reply = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
            }
            return web.json_response(_with_usage(reply, behaviour, own_usage))
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        events = [
            _event(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            )
        ]
        for chunk in self.chunks_of(text):
            events.append(
                _event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": chunk}, "finish_reason": None}
                        ],
                    }
                )
            )
        events.append(
            _event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        )
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if wants_usage and behaviour.usage is not None:
            events.append(_event(_with_usage({**base, "choices": []}, behaviour, own_usage)))
        events.append(b"data: [DONE]\n\n")
        return await self.sse(request, behaviour, events)


def _with_usage(reply: dict[str, Any], behaviour: Behaviour, own: Any) -> dict[str, Any]:
    """The reply with the usage the test set (none at all for None), else the fake's own."""
    usage = own if behaviour.usage == OWN_USAGE else behaviour.usage
    return reply if usage is None else {**reply, "usage": usage}


async def _openai_tool_call(
    fake: FakeServer,
    request: web.Request,
    behaviour: Behaviour,
    body: dict[str, Any],
    tool: str,
    model: str,
    created: int,
) -> web.StreamResponse:
    arguments = json.dumps(TOOL_ARGS)
    if not body.get("stream"):
        call = {
            "id": "call_fake_1",
            "type": "function",
            "function": {"name": tool, "arguments": arguments},
        }
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16},
            }
        )
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    events = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_fake_1",
                        "type": "function",
                        "function": {"name": tool, "arguments": ""},
                    }
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:6]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[6:]}}]}),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ]
    return await fake.sse(request, behaviour, events)


class FakeBrave(FakeServer):
    """Brave web search: GET /res/v1/web/search?q=&count=, X-Subscription-Token."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/res/v1/web/search", self.search)

    def key_of(self, request: web.Request) -> str | None:
        return request.headers.get("x-subscription-token")

    async def search(self, request: web.Request) -> web.StreamResponse:
        _behaviour, _recorded, early = await self.preamble(request)
        if early is not None:
            return early
        count = int(request.query.get("count", "5"))
        results = [
            {
                "title": f"Brave result {i}",
                "url": f"https://example.org/brave/{i}",
                "description": f"snippet {i} for {request.query.get('q')}",
            }
            for i in range(count)
        ]
        return web.json_response({"type": "search", "web": {"type": "search", "results": results}})


class FakeTavily(FakeServer):
    """Tavily search: POST /search with {"query", "max_results"}, Bearer key."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/search", self.search)

    def key_of(self, request: web.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else None

    async def search(self, request: web.Request) -> web.StreamResponse:
        _behaviour, recorded, early = await self.preamble(request)
        if early is not None:
            return early
        body = recorded.body
        results = [
            {
                "title": f"Tavily result {i}",
                "url": f"https://example.org/tavily/{i}",
                "content": f"content {i} for {body.get('query')}",
                "score": 0.9,
            }
            for i in range(body.get("max_results", 5))
        ]
        return web.json_response(
            {
                "query": body.get("query"),
                "answer": "a fake answer",
                "results": results,
                "response_time": 0.01,
            }
        )


__all__ = ["Behaviour", "FakeAnthropic", "FakeBrave", "FakeGemini", "FakeOpenAI", "FakeTavily"]
