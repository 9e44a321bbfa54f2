"""`/v1/chat/completions` reads its body through one Struct (`protocol.contract_http`): the
fields it shares with `llm.complete` are passed on as checked, and `/openapi.json` describes
the same Struct."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

from protocol.contract import ChatFields, LlmParams
from protocol.contract_http import ChatRequest
from sandbox.openai_api import _chat_request
from sandbox.openapi import document

MESSAGES = [{"role": "user", "content": "hi"}]


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    answer = _chat_request(body)
    assert isinstance(answer, JSONResponse) and answer.status_code == 400
    error: dict[str, Any] = json.loads(answer.body)["error"]
    return error


def test_the_shared_fields_pass_on_as_checked() -> None:
    chat = _chat_request(
        {
            "model": "m",
            "messages": MESSAGES,
            "max_tokens": 5,
            "max_completion_tokens": 7,
            "temperature": 1,
            "tools": None,
            "stream": True,
            "stream_options": {"include_usage": True, "include_obfuscation": False},
            "user": "someone",
            "n": 1,
        }
    )
    assert isinstance(chat, ChatRequest)
    fields = chat.llm_fields()
    assert fields == {"model": "m", "messages": MESSAGES, "max_tokens": 7, "temperature": 1}
    assert fields["messages"] is chat.messages  # passed on, not copied
    assert set(ChatFields.__struct_fields__) <= set(LlmParams.__struct_fields__)


def test_refusals_name_the_field_in_the_contracts_words() -> None:
    assert _refusal({"model": "m", "messages": MESSAGES, "colour": 1})["param"] == "colour"
    assert _refusal({"messages": MESSAGES})["message"] == "'model' is required"
    assert _refusal({"model": "m", "messages": MESSAGES, "n": 2})["param"] == "n"
    error = _refusal({"model": "m", "messages": MESSAGES, "max_tokens": 0})
    assert error["message"] == "'max_tokens' must be at least 1"
    assert error["code"] == "invalid_params" and error["type"] == "invalid_request_error"
    error = _refusal({"model": "m", "messages": MESSAGES, "stream": "yes"})
    assert error["message"] == "'stream' must be a boolean"
    error = _refusal({"model": "m", "messages": MESSAGES, "max_tokens": 10**40})
    assert error["message"] == "'max_tokens' must be at most 1000000"


def test_the_document_describes_the_struct_the_route_checks() -> None:
    schemas = document()["components"]["schemas"]
    chat = schemas["ChatRequest"]
    assert set(chat["properties"]) == set(ChatRequest.__struct_fields__)
    assert chat["required"] == ["model", "messages"] and chat["additionalProperties"] is False
    assert chat["properties"]["messages"]["items"]["required"] == ["role"]
    assert chat["properties"]["max_tokens"]["anyOf"][0]["maximum"] == 1_000_000
    ref = chat["properties"]["stream_options"]["anyOf"][0]["$ref"]
    assert ref == "#/components/schemas/StreamOptions" and "StreamOptions" in schemas
