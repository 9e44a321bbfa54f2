"""The original hub's shapes, as pure functions (the e2e side: tests/e2e/test_hub_clients.py)."""

from __future__ import annotations

from starlette.datastructures import Headers

from sandbox.hub_compat import api_answer, drop_empty, first_given, wants_json_status


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
