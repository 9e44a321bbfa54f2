"""The OpenAPI schemas of `/v1/messages` and `/v1/messages/count_tokens` (Anthropic's
Messages API) and of `/v1/responses` (OpenAI's Responses API), merged into `/openapi.json` by
`sandbox.openapi`."""

from __future__ import annotations

from typing import Any

_BLOCKS = {
    "type": "array",
    "maxItems": 1000,
    "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["user", "assistant", "system"]},
        "content": {"oneOf": [{"type": "string", "maxLength": 100_000}, _BLOCKS]},
    },
}
_REQUEST_PROPERTIES: dict[str, Any] = {
    "model": {"type": "string", "minLength": 1, "maxLength": 200},
    "messages": {"type": "array", "minItems": 1, "maxItems": 50, "items": _MESSAGE},
    "system": {"oneOf": [{"type": "string", "maxLength": 100_000}, _BLOCKS]},
    "tools": {
        "type": "array",
        "maxItems": 64,
        "items": {
            "type": "object",
            "required": ["name", "input_schema"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": {"type": "string"},
                "input_schema": {"type": "object"},
            },
        },
    },
    "tool_choice": {"type": "object", "required": ["type"]},
    "thinking": {"type": "object", "required": ["type"]},
}

SCHEMAS: dict[str, Any] = {
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "MessagesRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["model", "max_tokens", "messages"],
        "properties": {
            **_REQUEST_PROPERTIES,
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "stop_sequences": {
                "type": "array",
                "maxItems": 16,
                "items": {"type": "string", "maxLength": 256},
            },
            "stream": {"type": "boolean"},
            "metadata": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"user_id": {"type": ["string", "null"], "maxLength": 256}},
            },
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": {"type": "string"},
            "content": {"type": "array"},
            "stop_reason": {"type": ["string", "null"]},
            "stop_sequence": {"type": ["string", "null"]},
            "usage": {"type": "object"},
            "sealgate": {"type": "object"},
        },
    },
    "CountTokensRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["model", "messages"],
        "properties": _REQUEST_PROPERTIES,
    },
    "TokenCount": {
        "type": "object",
        "required": ["input_tokens"],
        "properties": {
            "input_tokens": {"type": "integer", "minimum": 0},
            "sealgate": {"type": "object"},
        },
    },
}

_ITEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "role": {"type": "string", "enum": ["user", "assistant", "system", "developer"]},
        "content": {"oneOf": [{"type": "string", "maxLength": 100_000}, _BLOCKS]},
    },
}
SCHEMAS["ResponsesRequest"] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1, "maxLength": 200},
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": 100_000},
                {"type": "array", "minItems": 1, "maxItems": 50, "items": _ITEM},
            ]
        },
        "instructions": {"type": "string", "maxLength": 100_000},
        "tools": {
            "type": "array",
            "maxItems": 64,
            "items": {
                "type": "object",
                "required": ["type", "name"],
                "properties": {
                    "type": {"const": "function"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 64},
                    "description": {"type": "string"},
                    "parameters": {"type": "object"},
                    "strict": {"type": "boolean"},
                },
            },
        },
        "tool_choice": {},
        "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "stream": {"type": "boolean"},
        "store": {"const": False},
        "include": {"type": "array", "items": {"const": "reasoning.encrypted_content"}},
        "reasoning": {"type": "object"},
        "text": {"type": "object"},
        "parallel_tool_calls": {"type": "boolean"},
        "prompt_cache_key": {"type": "string", "maxLength": 256},
        "metadata": {"type": "object"},
        "user": {"type": "string", "maxLength": 256},
    },
}
SCHEMAS["Response"] = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"type": "string"},
        "model": {"type": "string"},
        "output": {"type": "array"},
        "usage": {"type": ["object", "null"]},
        "sealgate": {"type": "object"},
    },
}
