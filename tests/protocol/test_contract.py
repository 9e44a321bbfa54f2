"""The typed RPC contract: each method's params decode straight into its Struct, and a
refusal keeps the protocol's wording (never msgspec's, never the value sent)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from protocol.contract import (
    CallerParams,
    EmbedParams,
    HelloParams,
    LlmParams,
    NoParams,
    OAuthTokenParams,
    Params,
    UsageReportParams,
    decode_params,
    to_map,
)
from protocol.errors import InvalidParams
from protocol.methods import METHODS

CALLER = {"ip": "127.0.0.1", "user_agent": "test"}


def test_every_method_names_a_params_struct_that_refuses_unknown_fields() -> None:
    for spec in METHODS.values():
        assert issubclass(spec.params, Params)
        assert spec.params.__struct_config__.forbid_unknown_fields
        assert spec.params.__struct_config__.frozen


def test_a_call_decodes_into_typed_values() -> None:
    params = decode_params(
        LlmParams,
        {
            "caller": {**CALLER, "credential": "sg_x"},
            "tool": "llm_complete",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 1,
            "max_tokens": None,
        },
    )
    assert isinstance(params.caller, CallerParams) and params.caller.credential == "sg_x"
    assert params.temperature == 1 and type(params.temperature) is int  # kept as sent
    assert params.prompt is UNSET and params.max_tokens is None


def test_to_map_gives_back_the_fields_as_sent_without_copying_lists() -> None:
    messages = [{"role": "user", "content": "hi"}]
    sent = {"caller": CALLER, "tool": "t", "messages": messages, "model": None}
    params = decode_params(LlmParams, sent)
    assert to_map(params) == sent  # absent stays absent, nil stays nil
    assert to_map(params)["messages"] is params.messages


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        (HelloParams, {"protocol_version": 1}, "missing parameter 'client'"),
        (
            HelloParams,
            {"protocol_version": "1", "client": "ctl"},
            "'protocol_version' must be an integer",
        ),
        (
            HelloParams,
            {"protocol_version": True, "client": "ctl"},
            "'protocol_version' must be an integer",
        ),
        (
            HelloParams,
            {"protocol_version": 0, "client": "ctl"},
            "'protocol_version' must be at least 1",
        ),
        (
            HelloParams,
            {"protocol_version": 1, "client": "x" * 100_000},
            "'client' must be one of: ctl, sandbox, supervisor",
        ),
        (
            UsageReportParams,
            {"since": 0, "by": "colour"},
            "'by' must be one of: day, model, provider, tool, user",
        ),
        (NoParams, {"verbose": 1}, "unknown parameter 'verbose'"),
        (NoParams, {b"key": 1}, "bad key"),
        (
            LlmParams,
            {"caller": CALLER, "tool": "t", "principal": "admin"},
            "unknown parameter 'principal'",
        ),
        (LlmParams, {"caller": "me", "tool": "t"}, "'caller' must be a map"),
        (
            LlmParams,
            {"caller": {"user_agent": ""}, "tool": "t"},
            "in 'caller': missing parameter 'ip'",
        ),
        (
            LlmParams,
            {"caller": {**CALLER, "ip": 1}, "tool": "t"},
            "in 'caller': 'ip' must be a string",
        ),
        (
            LlmParams,
            {"caller": {**CALLER, "x": 1}, "tool": "t"},
            "in 'caller': unknown parameter 'x'",
        ),
        (LlmParams, {"caller": CALLER, "tool": "t" * 65}, "'tool' is longer than 64"),
        (
            LlmParams,
            {"caller": CALLER, "tool": "t", "messages": [1]},
            "'messages[0]' must be a map",
        ),
        (
            LlmParams,
            {"caller": CALLER, "tool": "t", "messages": [{b"role": "user"}]},
            "'messages[0]' has a key that is not a string",
        ),
        (
            LlmParams,
            {"caller": CALLER, "tool": "t", "temperature": 3},
            "'temperature' must be at most 2",
        ),
        (
            LlmParams,
            {"caller": CALLER, "tool": "t", "temperature": "hot"},
            "'temperature' must be an integer or a number",
        ),
        (
            LlmParams,
            {"caller": CALLER, "tool": "t", "max_tokens": 0},
            "'max_tokens' must be at least 1",
        ),
        (
            EmbedParams,
            {"caller": CALLER, "model": "m", "input": [1]},
            "'input[0]' must be a string",
        ),
        (
            OAuthTokenParams,
            {"caller": CALLER, "form": {"grant_type": "x", "code": "c" * 257}},
            "in 'form': 'code' is longer than 256",
        ),
    ],
)
def test_refusals_keep_the_protocols_wording(
    kind: type[Params], params: dict[Any, Any], message: str
) -> None:
    with pytest.raises(InvalidParams, match=f"^{re.escape(message)}$"):
        decode_params(kind, params)


def test_a_refusal_never_echoes_the_value() -> None:
    secret = "sk-" + "s" * 40
    for params in ({"protocol_version": 1, "client": secret}, {"protocol_version": secret}):
        with pytest.raises(InvalidParams) as caught:
            decode_params(HelloParams, params)
        assert "sk-" not in caught.value.message


def test_msgspec_is_the_version_the_wording_was_written_for() -> None:
    # The wording parses msgspec's messages; a new msgspec must be checked against the table.
    assert msgspec.__version__ == "0.22.0"
