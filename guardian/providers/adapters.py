"""The three LLM wire formats: Anthropic Messages, Gemini generateContent, OpenAI chat.

Requests arrive in OpenAI's chat shape (messages, tools, tool_choice, response_format), the
lingua franca of agent frameworks. The OpenAI adapter passes them through; the Anthropic and
Gemini adapters translate them there and back, tool calls and streaming included. What a
provider cannot honour is refused with `InvalidParams` naming the parameter, never dropped.

An adapter holds one provider's configuration and nothing else: it keeps no per-call state
(a stream's running state is the `StreamState` the caller passes), so an adapter may serve
any number of calls at once. `chat()` returns the whole HTTP call (URL from
the configured `base_url`, the key in a header, never in the URL); `parse_chat()` and
`parse_event()` read the reply, raising `ProviderFailure("malformed")` for anything that does
not have the documented shape. Usage figures are passed on as reported, None when missing or
not a whole number: the router bounds them or counts itself (`guardian.calls.usage_figures`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from guardian.calls.usage_figures import reported_count
from guardian.providers import images
from guardian.providers.types import (
    ChatRequest,
    ChatResult,
    HttpCall,
    ProviderFailure,
    StreamDelta,
    StreamState,
    malformed,
)
from protocol.errors import InvalidParams
from protocol.pyfun import ProviderConfig

ANTHROPIC_VERSION = "2023-06-01"
_MODEL_ID = re.compile(r"^[A-Za-z0-9._:/@+-]{1,200}$")
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
}


class LLMAdapter(Protocol):
    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall: ...

    def auth(self, key: str | None) -> dict[str, str]: ...

    def parse_chat(self, body: Any) -> ChatResult: ...

    def parse_event(self, event: str, data: Any, stream: StreamState) -> StreamDelta | None: ...


def _headers(provider: ProviderConfig, auth: dict[str, str]) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    headers.update(dict(provider.headers))
    headers.update(auth)
    return headers


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _get(body: Any, *path: str | int) -> Any:
    current = body
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or len(current) <= step:
                return None
            current = current[step]
        else:
            if not isinstance(current, dict):
                return None
            current = current.get(step)
    return current


def _text_of(content: Any, provider: str) -> str:
    """A message's content as plain text; other part types are refused by name."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidParams(
                    f"messages: content of type {kind!r} is not supported by provider {provider}"
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise InvalidParams("messages: content must be a string or a list of parts")


def _user_parts(content: Any, provider: str) -> list[dict[str, Any]]:
    """A user message's content as OpenAI-style parts: text and image_url, in order."""
    if not isinstance(content, list):
        return [{"type": "text", "text": _text_of(content, provider)}]
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            parts.append(part)
        else:
            parts.append({"type": "text", "text": _text_of([part], provider)})
    return parts


def _arguments(call: dict[str, Any]) -> dict[str, Any]:
    raw = _get(call, "function", "arguments") or "{}"
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise InvalidParams("messages: a tool call's arguments are not JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidParams("messages: a tool call's arguments must be a JSON object")
    return parsed


def _matched(stop_reason: str, sequence: Any) -> str | None:
    """Anthropic's `stop_sequence`: the sequence that ended the text, when that is why."""
    if stop_reason == "stop_sequence" and isinstance(sequence, str) and sequence:
        return sequence
    return None


def _tool_functions(tools: list[Any] | None) -> list[dict[str, Any]]:
    functions = []
    for tool in tools or []:
        function = _get(tool, "function")
        if (
            _get(tool, "type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            raise InvalidParams(
                "tools: each tool must be {'type': 'function', 'function': {'name', ...}}"
            )
        functions.append(function)
    return functions


def _forced_function(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict):
        name = _get(tool_choice, "function", "name")
        if not isinstance(name, str):
            raise InvalidParams(
                "tool_choice: name the function as {'type': 'function', 'function': {'name'}}"
            )
        return name
    if tool_choice not in (None, "auto", "none", "required"):
        raise InvalidParams("tool_choice must be 'auto', 'none', 'required' or a function")
    return None


def _openai_tool_call(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


THINKING_TYPES = ("thinking", "redacted_thinking")


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant message's Anthropic thinking blocks (signatures included), which Anthropic
    wants back unchanged before the turn's text and tool calls; other providers never get them."""
    blocks = message.get("thinking_blocks") or []
    if not isinstance(blocks, list):
        raise InvalidParams("messages: thinking_blocks must be a list")
    out = []
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in THINKING_TYPES:
            raise InvalidParams(
                "messages: a thinking block must be of type thinking or redacted_thinking"
            )
        out.append(block)
    return out


def allowed_betas(provider: ProviderConfig, betas: tuple[str, ...]) -> list[str]:
    """The `anthropic-beta` values sent: those the client asked for that the provider's
    guardian configuration allows (`anthropic_beta`, default none). Headers never come from
    the sandbox as such (invariant 3)."""
    if provider.api != "anthropic":
        return []
    return [beta for beta in betas if beta in provider.anthropic_beta]


def dropped_extras(provider: ProviderConfig, request: ChatRequest) -> dict[str, list[str]]:
    """What of the request the provider was not sent: `anthropic-beta` values off its
    allowlist, and the Anthropic-only fields where the provider is not Anthropic."""
    dropped: dict[str, list[str]] = {}
    allowed = set(allowed_betas(provider, request.betas))
    betas = [beta for beta in request.betas if beta not in allowed]
    if betas:
        dropped["anthropic-beta"] = betas
    if request.anthropic and provider.api != "anthropic":
        dropped["anthropic"] = sorted(request.anthropic)
    return dropped


@dataclass(frozen=True, slots=True)
class AnthropicAdapter:
    provider: ProviderConfig

    def _messages(self, request: ChatRequest) -> tuple[str, list[dict[str, Any]]]:
        system = [request.system] if request.system else []
        out: list[dict[str, Any]] = []

        def add(role: str, blocks: list[dict[str, Any]]) -> None:
            if out and out[-1]["role"] == role:  # Anthropic wants turns to alternate
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": role, "content": blocks})

        for message in request.messages:
            role = message.get("role")
            if role == "system":
                system.append(_text_of(message.get("content"), self.provider.name))
            elif role == "user":
                add("user", self._user_blocks(message.get("content")))
            elif role == "assistant":
                blocks = thinking_blocks(message)
                text = _text_of(message.get("content"), self.provider.name)
                if text:
                    blocks.append({"type": "text", "text": text})
                for call in message.get("tool_calls") or []:
                    blocks.append(
                        {
                            "type": "tool_use",
                            "id": str(call.get("id", "")),
                            "name": str(_get(call, "function", "name") or ""),
                            "input": _arguments(call),
                        }
                    )
                add("assistant", blocks or [{"type": "text", "text": ""}])
            elif role == "tool":
                add(
                    "user",
                    [
                        {
                            "type": "tool_result",
                            "tool_use_id": str(message.get("tool_call_id", "")),
                            "content": _text_of(message.get("content"), self.provider.name),
                        }
                    ],
                )
            else:
                raise InvalidParams(f"messages: unknown role {role!r}")
        return "\n\n".join(s for s in system if s), out

    def _user_blocks(self, content: Any) -> list[dict[str, Any]]:
        """Text blocks and image blocks (Anthropic fetches https image URLs itself)."""
        return [
            images.anthropic_block(images.image_of(part, self.provider.name, may_fetch=True))
            if part["type"] == "image_url"
            else {"type": "text", "text": part["text"]}
            for part in _user_parts(content, self.provider.name)
        ]

    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall:
        if request.response_format and _get(request.response_format, "type") != "text":
            raise InvalidParams(
                f"response_format is not supported by provider {self.provider.name}"
                " (Anthropic); use an OpenAI-compatible provider or Gemini"
            )
        system, messages = self._messages(request)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)
        if request.stop:
            body["stop_sequences"] = request.stop
        for name, value in (request.anthropic or {}).items():
            body[name] = value
        functions = _tool_functions(request.tools)
        if functions:
            body["tools"] = [
                {
                    "name": f["name"],
                    "description": f.get("description", ""),
                    "input_schema": f.get("parameters") or {"type": "object"},
                }
                for f in functions
            ]
        if request.tool_choice is not None:
            forced = _forced_function(request.tool_choice)
            body["tool_choice"] = (
                {"type": "tool", "name": forced}
                if forced
                else {"type": {"required": "any"}.get(request.tool_choice, request.tool_choice)}
            )
        if stream:
            body["stream"] = True
        headers = _headers(self.provider, self.auth(key))
        betas = allowed_betas(self.provider, request.betas)
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        return HttpCall(
            method="POST",
            url=f"{self.provider.base_url}/messages",
            headers=headers,
            json=body,
        )

    def auth(self, key: str | None) -> dict[str, str]:
        """The headers that carry `key` (and the API version, which every request carries)."""
        auth = {"anthropic-version": self.provider.api_version_header or ANTHROPIC_VERSION}
        if key:
            auth["x-api-key"] = key
        return auth

    def parse_chat(self, body: Any) -> ChatResult:
        content = _get(body, "content")
        if not isinstance(content, list):
            raise malformed("Anthropic reply without a content list")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[dict[str, Any]] = []
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") in THINKING_TYPES:
                thinking.append(block)
            elif block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_use":
                calls.append(
                    _openai_tool_call(
                        len(calls),
                        str(block.get("id", "")),
                        str(block.get("name", "")),
                        json.dumps(block.get("input") or {}),
                    )
                )
        stop = str(_get(body, "stop_reason") or "end_turn")
        return ChatResult(
            text="".join(texts),
            model=str(_get(body, "model") or ""),
            input_tokens=reported_count(_get(body, "usage", "input_tokens")),
            output_tokens=reported_count(_get(body, "usage", "output_tokens")),
            finish_reason=_FINISH.get(stop, stop),
            tool_calls=calls,
            thinking=thinking,
            stop_sequence=_matched(stop, _get(body, "stop_sequence")),
        )

    def parse_event(self, event: str, data: Any, stream: StreamState) -> StreamDelta | None:
        kind = _get(data, "type") or event
        if kind == "content_block_start" and _get(data, "content_block", "type") in THINKING_TYPES:
            block = _get(data, "content_block")
            if block.get("type") == "redacted_thinking":
                return StreamDelta(thinking={"redacted": str(block.get("data") or "")})
            return StreamDelta(thinking={"thinking": str(block.get("thinking") or "")})
        if kind == "content_block_start" and _get(data, "content_block", "type") == "tool_use":
            index = len(stream.tool_blocks)
            stream.tool_blocks[_int(_get(data, "index"))] = index
            block = _get(data, "content_block")
            return StreamDelta(
                tool_calls=[
                    _openai_tool_call(
                        index, str(block.get("id", "")), str(block.get("name", "")), ""
                    )
                ]
            )
        if kind == "content_block_delta":
            delta = _get(data, "delta")
            if _get(delta, "type") == "input_json_delta":
                index = stream.tool_blocks.get(_int(_get(data, "index")), 0)
                return StreamDelta(
                    tool_calls=[
                        {
                            "index": index,
                            "function": {"arguments": str(_get(delta, "partial_json") or "")},
                        }
                    ]
                )
            if _get(delta, "type") == "thinking_delta":
                return StreamDelta(thinking={"thinking": str(_get(delta, "thinking") or "")})
            if _get(delta, "type") == "signature_delta":
                return StreamDelta(thinking={"signature": str(_get(delta, "signature") or "")})
            text = _get(delta, "text")
            return StreamDelta(text=text) if isinstance(text, str) else None
        if kind == "message_start":
            return StreamDelta(
                model=str(_get(data, "message", "model") or ""),
                input_tokens=reported_count(_get(data, "message", "usage", "input_tokens")),
            )
        if kind == "message_delta":
            stop = str(_get(data, "delta", "stop_reason") or "")
            return StreamDelta(
                output_tokens=reported_count(_get(data, "usage", "output_tokens")),
                finish_reason=_FINISH.get(stop, stop),
                stop_sequence=_matched(stop, _get(data, "delta", "stop_sequence")) or "",
            )
        if kind == "error":
            message = _get(data, "error", "message")
            raise ProviderFailure("status", f"stream error: {message}", status=500)
        return None


@dataclass(frozen=True, slots=True)
class GeminiAdapter:
    provider: ProviderConfig

    def _contents(self, request: ChatRequest) -> tuple[str, list[dict[str, Any]]]:
        system = [request.system] if request.system else []
        names: dict[str, str] = {}  # tool_call_id -> function name, for functionResponse
        contents: list[dict[str, Any]] = []
        for message in request.messages:
            role = message.get("role")
            if role == "user":
                contents.append({"role": "user", "parts": self._user_parts(message.get("content"))})
                continue
            text = _text_of(message.get("content"), self.provider.name)
            if role == "system":
                system.append(text)
            elif role == "assistant":
                parts: list[dict[str, Any]] = [{"text": text}] if text else []
                for call in message.get("tool_calls") or []:
                    name = str(_get(call, "function", "name") or "")
                    names[str(call.get("id", ""))] = name
                    parts.append({"functionCall": {"name": name, "args": _arguments(call)}})
                contents.append({"role": "model", "parts": parts or [{"text": ""}]})
            elif role == "tool":
                name = names.get(str(message.get("tool_call_id", "")), "")
                contents.append(
                    {
                        "role": "user",
                        "parts": [
                            {"functionResponse": {"name": name, "response": {"content": text}}}
                        ],
                    }
                )
            else:
                raise InvalidParams(f"messages: unknown role {role!r}")
        return "\n\n".join(s for s in system if s), contents

    def _user_parts(self, content: Any) -> list[dict[str, Any]]:
        """Text parts and inline images (Gemini cannot fetch an https URL: a 400 says so)."""
        return [
            images.gemini_part(images.image_of(part, self.provider.name, may_fetch=False))
            if part["type"] == "image_url"
            else {"text": part["text"]}
            for part in _user_parts(content, self.provider.name)
        ]

    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall:
        model = request.model.removeprefix("models/")
        if not _MODEL_ID.match(model):
            raise ProviderFailure("status", f"model id {model!r} is not valid", status=400)
        system, contents = self._contents(request)
        config: dict[str, Any] = {"maxOutputTokens": request.max_tokens}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.stop:
            config["stopSequences"] = request.stop
        body: dict[str, Any] = {"contents": contents, "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        functions = _tool_functions(request.tools)
        if functions:
            body["tools"] = [
                {
                    "functionDeclarations": [
                        {
                            "name": f["name"],
                            "description": f.get("description", ""),
                            **({"parameters": f["parameters"]} if f.get("parameters") else {}),
                        }
                        for f in functions
                    ]
                }
            ]
        if request.tool_choice is not None:
            forced = _forced_function(request.tool_choice)
            mode = (
                "ANY"
                if forced or request.tool_choice == "required"
                else ("NONE" if request.tool_choice == "none" else "AUTO")
            )
            body["toolConfig"] = {
                "functionCallingConfig": {
                    "mode": mode,
                    **({"allowedFunctionNames": [forced]} if forced else {}),
                }
            }
        kind = _get(request.response_format, "type")
        if kind in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
            schema = _get(request.response_format, "json_schema", "schema")
            if kind == "json_schema" and isinstance(schema, dict):
                config["responseSchema"] = schema
        elif kind not in (None, "text"):
            raise InvalidParams(
                f"response_format type {kind!r} is not supported by provider {self.provider.name}"
            )
        operation = "streamGenerateContent" if stream else "generateContent"
        return HttpCall(
            method="POST",
            url=f"{self.provider.base_url}/models/{quote(model, safe='')}:{operation}",
            headers=_headers(self.provider, self.auth(key)),
            json=body,
            params={"alt": "sse"} if stream else None,
        )

    def auth(self, key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    def _delta(self, body: Any, stream: StreamState) -> StreamDelta:
        candidate = _get(body, "candidates", 0)
        parts = _get(candidate, "content", "parts")
        texts, calls = [], []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            call = part.get("functionCall")
            if isinstance(call, dict):
                calls.append(
                    _openai_tool_call(
                        stream.tool_calls,
                        f"call_{stream.tool_calls}",
                        str(call.get("name", "")),
                        json.dumps(call.get("args") or {}),
                    )
                )
                stream.tool_calls += 1
        usage = _get(body, "usageMetadata")
        finish = str(_get(candidate, "finishReason") or "")
        if calls and finish in ("", "STOP"):
            finish = "tool_calls"
        return StreamDelta(
            text="".join(texts),
            model=str(_get(body, "modelVersion") or ""),
            input_tokens=reported_count(_get(usage, "promptTokenCount")),
            output_tokens=reported_count(_get(usage, "candidatesTokenCount")),
            finish_reason=_FINISH.get(finish, finish.lower()),
            tool_calls=calls,
        )

    def parse_chat(self, body: Any) -> ChatResult:
        if not isinstance(_get(body, "candidates"), list):
            raise malformed("Gemini reply without candidates")
        delta = self._delta(body, StreamState())
        return ChatResult(
            text=delta.text,
            model=delta.model,
            input_tokens=delta.input_tokens,
            output_tokens=delta.output_tokens,
            finish_reason=delta.finish_reason or "stop",
            tool_calls=delta.tool_calls,
        )

    def parse_event(self, event: str, data: Any, stream: StreamState) -> StreamDelta | None:
        if _get(data, "error") is not None:
            raise ProviderFailure(
                "status", f"stream error: {_get(data, 'error', 'message')}", status=500
            )
        return self._delta(data, stream)


@dataclass(frozen=True, slots=True)
class OpenAIAdapter:
    """OpenAI's chat completions: OpenAI, OpenRouter, Hugging Face, Mistral, local servers."""

    provider: ProviderConfig

    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall:
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(
            {k: v for k, v in m.items() if k != "thinking_blocks"} if "thinking_blocks" in m else m
            for m in request.messages
        )
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        for name in ("tools", "tool_choice", "response_format", "stop"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return HttpCall(
            method="POST",
            url=f"{self.provider.base_url}/chat/completions",
            headers=_headers(self.provider, self.auth(key)),
            json=body,
        )

    def auth(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    def parse_chat(self, body: Any) -> ChatResult:
        choice = _get(body, "choices", 0)
        if not isinstance(choice, dict):
            raise malformed("chat completion without choices")
        text = _get(choice, "message", "content")
        calls = _get(choice, "message", "tool_calls")
        return ChatResult(
            text=text if isinstance(text, str) else "",
            model=str(_get(body, "model") or ""),
            input_tokens=reported_count(_get(body, "usage", "prompt_tokens")),
            output_tokens=reported_count(_get(body, "usage", "completion_tokens")),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            tool_calls=[{**c, "index": i} for i, c in enumerate(calls)]
            if isinstance(calls, list)
            else [],
        )

    def parse_event(self, event: str, data: Any, stream: StreamState) -> StreamDelta | None:
        if _get(data, "error") is not None:
            raise ProviderFailure(
                "status", f"stream error: {_get(data, 'error', 'message')}", status=500
            )
        choice = _get(data, "choices", 0)
        text = _get(choice, "delta", "content")
        calls = _get(choice, "delta", "tool_calls")
        usage = _get(data, "usage")
        return StreamDelta(
            text=text if isinstance(text, str) else "",
            model=str(_get(data, "model") or ""),
            input_tokens=reported_count(_get(usage, "prompt_tokens")),
            output_tokens=reported_count(_get(usage, "completion_tokens")),
            finish_reason=str(_get(choice, "finish_reason") or ""),
            tool_calls=calls if isinstance(calls, list) else [],
        )


def embed_call(provider: ProviderConfig, key: str | None, model: str, texts: list[str]) -> HttpCall:
    """The embeddings request in the provider's wire format."""
    if provider.api == "anthropic":
        raise InvalidParams(f"provider {provider.name} (Anthropic) has no embeddings API")
    if provider.api == "gemini":
        model = model.removeprefix("models/")
        if not _MODEL_ID.match(model):
            raise InvalidParams(f"model id {model!r} is not valid")
        body = {
            "requests": [
                {"model": f"models/{model}", "content": {"parts": [{"text": t}]}} for t in texts
            ]
        }
        return HttpCall(
            method="POST",
            url=f"{provider.base_url}/models/{quote(model, safe='')}:batchEmbedContents",
            headers=_headers(provider, {"x-goog-api-key": key} if key else {}),
            json=body,
        )
    return HttpCall(
        method="POST",
        url=f"{provider.base_url}/embeddings",
        headers=_headers(provider, {"authorization": f"Bearer {key}"} if key else {}),
        json={"model": model, "input": texts, "encoding_format": "float"},
    )


def parse_embeddings(provider: ProviderConfig, body: Any) -> tuple[list[list[float]], int | None]:
    """(vectors in input order, input tokens as reported: None when not reported, as
    Gemini's batch API never does; the router then bills the request's bound)."""
    tokens: int | None
    if provider.api == "gemini":
        items = _get(body, "embeddings")
        vectors = [_get(item, "values") for item in items] if isinstance(items, list) else None
        tokens = None
    else:
        items = _get(body, "data")
        if isinstance(items, list):
            items = sorted(items, key=lambda item: _int(_get(item, "index")))
        vectors = [_get(item, "embedding") for item in items] if isinstance(items, list) else None
        tokens = reported_count(_get(body, "usage", "prompt_tokens"))
    if vectors is None or not all(isinstance(v, list) for v in vectors):
        raise malformed("embeddings reply without vectors")
    return vectors, tokens


def llm_adapter(provider: ProviderConfig) -> LLMAdapter:
    """The adapter for a provider's wire format (a frozen view of its configuration)."""
    if provider.api == "anthropic":
        return AnthropicAdapter(provider)
    if provider.api == "gemini":
        return GeminiAdapter(provider)
    return OpenAIAdapter(provider)
