"""`GET /openapi.json`: an OpenAPI 3.1 document of `/v1` (OpenAI's and Anthropic's
routes), `/api` and `/auth`.

Public like `/healthz` (it holds no secret and no configuration: the models and tools a caller
may use come from `/v1/models` and `list_active_tools`). The request bodies the contract
declares as Structs (`protocol.contract_http`, the chat request first) are generated from them
with `msgspec.json.schema_components`, so the document says what the route checks; the rest
is written here. Schemathesis runs against it in the tests (tests/reliability/test_openapi.py),
so a route that answers outside what this says fails the build.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from protocol import __version__
from protocol.contract_http import schemas
from sandbox import anthropic_openapi
from sandbox.caller import SESSION_COOKIE
from sandbox.json_response import JSONResponse

PATH = "/openapi.json"
REF = "#/components/schemas/{name}"

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {_JSON: {"schema": schema}}


def _errors(shape: str, *statuses: int) -> dict[str, Any]:
    """Error answers every route may give: the gateway's refusals before the route runs (Host
    421, Origin 403, content type 415, body size 413, body deadline 408, guardian away 503)
    and the typed errors the guardian returns through it."""
    texts = {
        400: "the request does not fit this document",
        401: "no credential, or one the guardian does not accept",
        403: "not allowed for this caller, or an Origin this gateway does not serve",
        404: "no such tool or model",
        408: "the request body did not arrive in time",
        413: "the request body is too large",
        415: "the request body is not declared JSON",
        421: "a Host this gateway does not serve",
        429: "rate limit, budget, or too many open streams",
        502: "every provider tried failed",
        503: "the guardian (or every provider) is unavailable now",
        504: "the call ran out of time",
    }
    common = (403, 408, 413, 415, 421, 503)
    return {
        str(status): {"description": texts[status], "content": _json(_ref(shape))}
        for status in sorted({*common, *statuses})
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "chat.completion"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array"},
            "usage": {"type": "object"},
            "sealgate": {"type": "object"},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["receipt_id", "receipt", "verifier_key", "leaf_index", "proof"],
        "properties": {
            "receipt_id": {"type": "string"},
            "receipt": {"type": "string", "description": "base64url(body).base64url(signature)"},
            "verifier_key": {"type": "string"},
            "leaf_index": {"type": ["integer", "null"]},
            "proof": {"type": ["object", "null"]},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object", "owned_by"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "model"},
                        "created": {"type": "integer"},
                        "owned_by": {"type": "string"},
                    },
                },
            },
        },
    },
    "EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 200},
            "input": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "maxItems": 64},
                ]
            },
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer"},
            "user": {"type": "string"},
        },
    },
    "EmbeddingList": {
        "type": "object",
        "required": ["object", "data", "model"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array"},
            "model": {"type": "string"},
            "usage": {"type": "object"},
        },
    },
    "ToolResult": {
        "type": "object",
        "required": ["result"],
        "properties": {
            # an LLM or search tool's answer text (as the original hub answered), else the
            # built-in tool's map; `meta` is the whole structured result beside the text
            "result": {"type": ["string", "object"]},
            "meta": {"type": "object"},
        },
    },
    "Login": {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "maxLength": 200},
            "password": {"type": "string", "maxLength": 2000},
        },
    },
    "Session": {
        "type": "object",
        "required": ["principal", "expires_at"],
        "properties": {"principal": {"type": "string"}, "expires_at": {"type": "number"}},
    },
    "LoggedOut": {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"const": True}},
    },
}


def _operation(
    summary: str,
    ok: dict[str, Any],
    errors: dict[str, Any],
    body: str | None = None,
    public: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "OK", "content": ok}, **errors},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(_ref(body))}
    if public:
        operation["security"] = []
    return operation


def document() -> dict[str, Any]:
    """The whole document; built once per process."""
    chat_ok = {
        **_json(_ref("ChatCompletion")),
        "text/event-stream": {"schema": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SealGate",
            "version": __version__,
            "description": "A multi-LLM gateway. MCP is served at /mcp (Streamable HTTP) and "
            "/sse (legacy SSE); this document covers the HTTP APIs beside it.",
        },
        "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
        "paths": {
            "/v1/chat/completions": {
                "post": _operation(
                    "OpenAI-compatible chat completion, plain or streamed (SSE)",
                    chat_ok,
                    _errors("OpenAIError", 400, 401, 404, 429, 502, 504),
                    "ChatRequest",
                )
            },
            "/v1/models": {
                "get": _operation(
                    "The models this caller may use",
                    _json(_ref("ModelList")),
                    _errors("OpenAIError", 401),
                )
            },
            "/v1/embeddings": {
                "post": _operation(
                    "OpenAI-compatible embeddings",
                    _json(_ref("EmbeddingList")),
                    _errors("OpenAIError", 400, 401, 404, 429, 502, 504),
                    "EmbeddingRequest",
                )
            },
            "/v1/messages": {
                "post": _operation(
                    "Anthropic Messages API, plain or streamed (Anthropic's SSE events)",
                    {
                        **_json(_ref("Message")),
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                    _errors("AnthropicError", 400, 401, 404, 429, 502, 504),
                    "MessagesRequest",
                )
            },
            "/v1/messages/count_tokens": {
                "post": _operation(
                    "A Messages request's input tokens: the provider's count where the model"
                    " resolves to an Anthropic provider, else SealGate's estimate (one token"
                    " per byte), marked as one",
                    _json(_ref("TokenCount")),
                    _errors("AnthropicError", 400, 401, 403, 404, 429, 502, 504),
                    "CountTokensRequest",
                )
            },
            "/v1/responses": {
                "post": _operation(
                    "OpenAI Responses API, plain or streamed (the Responses SSE events); no"
                    " stored responses",
                    {
                        **_json(_ref("Response")),
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                    _errors("OpenAIError", 400, 401, 404, 429, 502, 504),
                    "ResponsesRequest",
                )
            },
            "/v1/receipts/{receipt_id}": {
                "get": {
                    **_operation(
                        "One of the caller's own receipts, re-signed from its ledger row, with"
                        " its leaf in the audit log and an inclusion proof once a checkpoint"
                        " covers it (docs/AUDIT.md); another caller's is 404",
                        _json(_ref("Receipt")),
                        _errors("OpenAIError", 401, 404),
                    ),
                    "parameters": [
                        {
                            "name": "receipt_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 128},
                        }
                    ],
                }
            },
            "/api": {
                "post": _operation(
                    "Call one active tool by name (the MCP tools, as JSON)",
                    _json(_ref("ToolResult")),
                    _errors("Error", 400, 401, 404, 429, 502, 504),
                    "ToolCall",
                )
            },
            "/auth/login": {
                "post": _operation(
                    "Log in with a user name and password; sets the session cookie",
                    _json(_ref("Session")),
                    _errors("Error", 400, 401, 429),
                    "Login",
                    public=True,
                )
            },
            "/auth/logout": {
                "post": _operation(
                    "End this session (and forget its cookie)",
                    _json(_ref("LoggedOut")),
                    _errors("Error", 400, 401),
                )
            },
        },
        "components": {
            "schemas": {**SCHEMAS, **schemas(REF), **anthropic_openapi.SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
    }


_DOCUMENT = document()


async def openapi_json(request: Request) -> Response:
    return JSONResponse(_DOCUMENT)
