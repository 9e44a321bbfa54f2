"""The original hub's shapes, as pure functions (the e2e side: tests/e2e/test_hub_clients.py)."""

from __future__ import annotations

import logging

import pytest
from starlette.datastructures import Headers

from sandbox.hub_compat import (
    api_answer,
    drop_empty,
    drop_unused_generic,
    first_given,
    wants_json_status,
)


def test_an_empty_string_means_the_default() -> None:
    sent = {"prompt": "Hi", "provider_name": "", "max_tokens": "", "temperature": 0}
    assert drop_empty(sent) == {"prompt": "Hi", "temperature": 0}
    assert first_given("", None, "gemini") == "gemini"
    assert first_given("anthropic", "gemini") == "anthropic"  # SealGate's own name wins
    assert first_given("", None) is None


def test_text_tools_answer_text_with_details_as_meta() -> None:
    data = {"text": "Hello", "provider": "anthropic", "cost_usd": 0.001}
    assert api_answer(data, "Hello") == {"result": "Hello", "meta": data}
    assert api_answer({"status": "ok"}, None) == {"result": {"status": "ok"}}


def test_json_status_for_programs_with_a_credential_header_only() -> None:
    assert wants_json_status(Headers({"authorization": "Bearer t"}))
    assert wants_json_status(Headers({"x-api-key": "t", "accept": "application/json"}))
    assert not wants_json_status(Headers({"authorization": "Bearer t", "accept": "text/html"}))
    assert not wants_json_status(Headers({"accept": "*/*"}))  # curl without a token: the page
    assert not wants_json_status(Headers({"cookie": "sg_session=s"}))  # a browser session


def test_generic_keys_a_tool_does_not_take_are_dropped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = {"prompt": "sealgate", "provider_name": "brave", "model": "m", "max_tokens": 50}
    takes = ("query", "max_results", "provider", "prompt", "provider_name")
    with caplog.at_level(logging.INFO, logger="sealgate.sandbox.api"):
        for _ in range(3):
            kept = drop_unused_generic("unit_search", sent, takes)
            assert kept == {"prompt": "sealgate", "provider_name": "brave"}
    ignored = [r.getMessage() for r in caplog.records if "unit_search" in r.getMessage()]
    assert len(ignored) == 1 and "max_tokens, model" in ignored[0], ignored
    # a name that is not one of the original's generic keys is left for the refusal
    assert drop_unused_generic("unit_search", {"colour": "red"}, takes) == {"colour": "red"}
    every = ("prompt", "provider_name", "model", "max_tokens")
    assert drop_unused_generic("unit_llm", sent, every) == sent
