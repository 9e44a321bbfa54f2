"""Every method's result is one Struct that both processes read, and a map decoded into it
comes back key for key, in the order the guardian has always sent it (what HTTP clients see
rides on that order)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from protocol.contract_results import (
    ConsentView,
    HealthResult,
    LlmResult,
    OAuthLoginResult,
    Result,
    SearchResult,
    VerifyResult,
    decode_result,
    to_wire,
)
from protocol.errors import Internal, InvalidParams
from protocol.methods import METHODS
from protocol.schema import schema_of, validate

#: Answers as the guardian's code builds them (guardian/calls/router.py, identity, oauth).
ANSWERS: list[tuple[str, dict[str, Any]]] = [
    (
        "llm.complete",
        {
            "text": "hi",
            "provider": "openai",
            "model": "gpt-test",
            "fallback_path": [{"provider": "anthropic", "error": "HTTP 503"}],
            "usage": {"input_tokens": 9, "output_tokens": 5, "estimated": True},
            "cost_usd": None,
            "latency_ms": 12.5,
            "finish_reason": "stop",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f"}}],
        },
    ),
    (
        "llm.embed",
        {
            "data": [[0.25, -1, 3.5e-05]],
            "model": "text-embedding-test",
            "provider": "openai",
            "usage": {"input_tokens": 3},
        },
    ),
    (
        "search.web",
        {
            "results": [{"title": "t", "url": "https://example.org/", "snippet": "s"}],
            "provider": "brave",
            "fallback_path": [],
            "latency_ms": 3,
            "answer": "the answer",
        },
    ),
    (
        "search.web",
        {"results": [], "provider": "brave", "fallback_path": [], "latency_ms": 0.5},
    ),
    (
        "auth.verify",
        {
            "principal": "ada",
            "role": "user",
            "kind": "oauth",
            "admin": False,
            "user_id": "u1",
            "grant": "g" * 64,
            "tools": ["llm_complete"],
            "scopes": ["mcp"],
            "auth_enabled": True,
        },
    ),
    ("auth.login", {"session": "s", "principal": "ada", "expires_at": 1_800_000_000.5}),
    ("tokens.issue", {"token": "sg_x", "id": "tok_1", "user": "ada", "expires_at": None}),
    ("users.delete", {"ok": True, "auth_switched_off": False, "open_mode": False}),
    ("oauth.login", {"redirect_to": "http://127.0.0.1:9/cb?code=c"}),
    (
        "oauth.login",
        {
            "ticket": "t",
            "client_name": "c",
            "client_id": "https://c.example/",
            "redirect_host": "127.0.0.1",
            "scopes": ["mcp"],
            "resource": "https://hub.example/",
        },
    ),
    (
        "oauth.token",
        {
            "access_token": "a",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "r",
            "scope": "mcp",
        },
    ),
]


def test_every_method_declares_its_result_once_as_a_struct() -> None:
    for name, spec in METHODS.items():
        assert issubclass(spec.returns, Result), name
        assert spec.result == schema_of(spec.returns)  # the map schema is derived, not written


@pytest.mark.parametrize(("method", "answer"), ANSWERS)
def test_an_answer_comes_back_key_for_key_in_its_order(method: str, answer: dict[str, Any]) -> None:
    typed = decode_result(METHODS[method].returns, answer)
    wire = to_wire(typed)
    assert wire == answer
    assert list(wire) == list(answer)
    assert msgspec.json.encode(wire) == msgspec.json.encode(answer)  # ints stay ints
    validate(METHODS[method].result, answer)


def test_an_answer_outside_the_contract_is_an_internal_error() -> None:
    health = {
        "status": "ok",
        "version": "1",
        "protocol_version": 1,
        "uptime_s": 1.0,
        "python": "3.12",
        "pid": 1,
        "queues": {},
    }
    assert decode_result(HealthResult, health).uptime_s == 1.0
    with pytest.raises(Internal, match="does not fit HealthResult"):
        decode_result(HealthResult, {**health, "key": "sk-not-declared"})
    with pytest.raises(Internal, match="uptime_s"):
        decode_result(HealthResult, {k: v for k, v in health.items() if k != "uptime_s"})
    with pytest.raises(Internal, match=r"\$\.usage\.input_tokens"):
        decode_result(LlmResult, {**ANSWERS[0][1], "usage": {"input_tokens": "9"}})


def test_the_typed_fields_are_read_by_name() -> None:
    found = decode_result(SearchResult, ANSWERS[2][1])
    assert found.results[0].url == "https://example.org/" and found.answer == "the answer"
    verified = decode_result(VerifyResult, ANSWERS[4][1])
    assert verified.scopes == ["mcp"] and verified.auth_enabled


def test_an_oauth_login_answer_is_a_redirect_or_a_consent_view() -> None:
    ticket, view = decode_result(OAuthLoginResult, ANSWERS[9][1]).consent()
    assert ticket == "t" and view == ConsentView(
        client_name="c",
        client_id="https://c.example/",
        redirect_host="127.0.0.1",
        scopes=["mcp"],
        resource="https://hub.example/",
    )
    with pytest.raises(Internal):
        decode_result(OAuthLoginResult, ANSWERS[8][1]).consent()


def test_the_derived_map_schema_checks_nested_structs() -> None:
    schema = METHODS["llm.complete"].result
    with pytest.raises(InvalidParams, match="in 'usage'"):
        validate(schema, {**ANSWERS[0][1], "usage": {"input_tokens": 1, "other": 2}})
    with pytest.raises(InvalidParams, match="missing parameter 'finish_reason'"):
        validate(schema, {k: v for k, v in ANSWERS[0][1].items() if k != "finish_reason"})
