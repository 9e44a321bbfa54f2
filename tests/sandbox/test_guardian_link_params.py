"""The sandbox's stubs build their calls from the contract's params Structs, so what they
send is what the guardian decodes."""

from __future__ import annotations

import pytest

from protocol.contract import LlmParams, Sealed, decode_params
from protocol.errors import InvalidParams
from sandbox.guardian_link import Caller, _llm_params, _prompt_params


def test_the_caller_is_sent_bounded_and_without_an_absent_credential() -> None:
    assert Caller(ip="1.2.3.4", user_agent="ua").to_wire() == {"ip": "1.2.3.4", "user_agent": "ua"}
    wire = Caller(ip="9" * 100, user_agent="u" * 600, credential="c" * 600).to_wire()
    assert (len(wire["ip"]), len(wire["user_agent"]), len(wire["credential"])) == (64, 512, 512)
    assert decode_params(Sealed, {"caller": wire}).caller.credential == "c" * 512


def test_a_prompt_call_decodes_on_the_guardian_as_sent() -> None:
    sent = _prompt_params(
        Caller(ip="::1", user_agent="t"), "llm_complete", "hi", {"model": "m", "system": None}
    )
    assert sent == {
        "caller": {"ip": "::1", "user_agent": "t"},
        "tool": "llm_complete",
        "prompt": "hi",
        "model": "m",
    }
    assert decode_params(LlmParams, sent).model == "m"


def test_a_field_the_contract_does_not_declare_is_refused_before_it_is_sent() -> None:
    with pytest.raises(InvalidParams, match="unknown parameter 'logit_bias'"):
        _llm_params(Caller(ip="", user_agent=""), "llm_complete", {"logit_bias": {}})
