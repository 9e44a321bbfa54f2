"""The three LLM wire formats: Anthropic Messages, Gemini generateContent, OpenAI chat.

An adapter is built from one provider's configuration. `chat()` returns the whole HTTP call
(URL from the configured `base_url`, the key in a header, never in the URL); `parse_chat()`
and `parse_event()` read the reply, raising `ProviderFailure("malformed")` for anything that
does not have the documented shape.
"""

from __future__ import annotations

import re
from typing import Any, Protocol
from urllib.parse import quote

from guardian.providers.types import (
    ChatRequest,
    ChatResult,
    HttpCall,
    ProviderFailure,
    StreamDelta,
    malformed,
)
from protocol.pyfun import ProviderConfig

ANTHROPIC_VERSION = "2023-06-01"
_MODEL_ID = re.compile(r"^[A-Za-z0-9._:/@+-]{1,200}$")


class LLMAdapter(Protocol):
    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall: ...

    def parse_chat(self, body: Any) -> ChatResult: ...

    def parse_event(self, event: str, data: Any) -> StreamDelta | None: ...


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


class AnthropicAdapter:
    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider

    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall:
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.system:
            body["system"] = request.system
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, 1.0)
        if stream:
            body["stream"] = True
        auth = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            auth["x-api-key"] = key
        return HttpCall(
            method="POST",
            url=f"{self.provider.base_url}/messages",
            headers=_headers(self.provider, auth),
            json=body,
        )

    def parse_chat(self, body: Any) -> ChatResult:
        content = _get(body, "content")
        if not isinstance(content, list):
            raise malformed("Anthropic reply without a content list")
        text = "".join(
            block.get("text", "")
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
        return ChatResult(
            text=text,
            model=str(_get(body, "model") or ""),
            input_tokens=_int(_get(body, "usage", "input_tokens")),
            output_tokens=_int(_get(body, "usage", "output_tokens")),
            finish_reason=str(_get(body, "stop_reason") or "stop"),
        )

    def parse_event(self, event: str, data: Any) -> StreamDelta | None:
        kind = _get(data, "type") or event
        if kind == "content_block_delta":
            text = _get(data, "delta", "text")
            return StreamDelta(text=text) if isinstance(text, str) else None
        if kind == "message_start":
            return StreamDelta(
                model=str(_get(data, "message", "model") or ""),
                input_tokens=_int(_get(data, "message", "usage", "input_tokens")),
            )
        if kind == "message_delta":
            return StreamDelta(
                output_tokens=_int(_get(data, "usage", "output_tokens")),
                finish_reason=str(_get(data, "delta", "stop_reason") or ""),
            )
        if kind == "error":
            message = _get(data, "error", "message")
            raise ProviderFailure("status", f"stream error: {message}", status=500)
        return None


class GeminiAdapter:
    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider

    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall:
        model = request.model.removeprefix("models/")
        if not _MODEL_ID.match(model):
            raise ProviderFailure("status", f"model id {model!r} is not valid", status=400)
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": request.prompt}]}],
            "generationConfig": {"maxOutputTokens": request.max_tokens},
        }
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        if request.temperature is not None:
            body["generationConfig"]["temperature"] = request.temperature
        operation = "streamGenerateContent" if stream else "generateContent"
        return HttpCall(
            method="POST",
            url=f"{self.provider.base_url}/models/{quote(model, safe='')}:{operation}",
            headers=_headers(self.provider, {"x-goog-api-key": key} if key else {}),
            json=body,
            params={"alt": "sse"} if stream else None,
        )

    @staticmethod
    def _delta(body: Any) -> StreamDelta:
        candidate = _get(body, "candidates", 0)
        parts = _get(candidate, "content", "parts")
        text = ""
        if isinstance(parts, list):
            text = "".join(
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        usage = _get(body, "usageMetadata")
        return StreamDelta(
            text=text,
            model=str(_get(body, "modelVersion") or ""),
            input_tokens=_int(_get(usage, "promptTokenCount")) if usage else None,
            output_tokens=_int(_get(usage, "candidatesTokenCount")) if usage else None,
            finish_reason=str(_get(candidate, "finishReason") or ""),
        )

    def parse_chat(self, body: Any) -> ChatResult:
        if not isinstance(_get(body, "candidates"), list):
            raise malformed("Gemini reply without candidates")
        delta = self._delta(body)
        return ChatResult(
            text=delta.text,
            model=delta.model,
            input_tokens=delta.input_tokens or 0,
            output_tokens=delta.output_tokens or 0,
            finish_reason=(delta.finish_reason or "STOP").lower(),
        )

    def parse_event(self, event: str, data: Any) -> StreamDelta | None:
        if _get(data, "error") is not None:
            raise ProviderFailure(
                "status", f"stream error: {_get(data, 'error', 'message')}", status=500
            )
        delta = self._delta(data)
        delta.finish_reason = delta.finish_reason.lower()
        return delta


class OpenAIAdapter:
    """OpenAI's chat completions: OpenAI, OpenRouter, Hugging Face, Mistral, local servers."""

    def __init__(self, provider: ProviderConfig) -> None:
        self.provider = provider

    def chat(self, key: str | None, request: ChatRequest, *, stream: bool) -> HttpCall:
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return HttpCall(
            method="POST",
            url=f"{self.provider.base_url}/chat/completions",
            headers=_headers(self.provider, {"authorization": f"Bearer {key}"} if key else {}),
            json=body,
        )

    def parse_chat(self, body: Any) -> ChatResult:
        choice = _get(body, "choices", 0)
        if not isinstance(choice, dict):
            raise malformed("chat completion without choices")
        text = _get(choice, "message", "content")
        return ChatResult(
            text=text if isinstance(text, str) else "",
            model=str(_get(body, "model") or ""),
            input_tokens=_int(_get(body, "usage", "prompt_tokens")),
            output_tokens=_int(_get(body, "usage", "completion_tokens")),
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )

    def parse_event(self, event: str, data: Any) -> StreamDelta | None:
        if _get(data, "error") is not None:
            raise ProviderFailure(
                "status", f"stream error: {_get(data, 'error', 'message')}", status=500
            )
        choice = _get(data, "choices", 0)
        text = _get(choice, "delta", "content")
        usage = _get(data, "usage")
        return StreamDelta(
            text=text if isinstance(text, str) else "",
            model=str(_get(data, "model") or ""),
            input_tokens=_int(_get(usage, "prompt_tokens")) if usage else None,
            output_tokens=_int(_get(usage, "completion_tokens")) if usage else None,
            finish_reason=str(_get(choice, "finish_reason") or ""),
        )


def llm_adapter(provider: ProviderConfig) -> LLMAdapter:
    if provider.api == "anthropic":
        return AnthropicAdapter(provider)
    if provider.api == "gemini":
        return GeminiAdapter(provider)
    return OpenAIAdapter(provider)
