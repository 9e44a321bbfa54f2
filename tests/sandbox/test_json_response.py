"""The sandbox renders JSON with msgspec (sandbox/json_response.py): what a client parses
must be what Starlette's `json.dumps` rendering gave, and a value `json.dumps` refused must
not turn an answer into a 500."""

from __future__ import annotations

import json
import math

import pytest
from starlette import responses

from sandbox.json_response import JSONResponse

BODIES = [
    {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": 'ünï\u2028\x00"\\'}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2**63 + 5},
        "sealgate": {"cost_usd": 1e-7, "latency_ms": 1.5, "big": 1e21, "none": None},
    },
    [1, "two", 3.0, False, {"nested": [[]]}],
    {1: "an integer key"},
    "text",
    -0.0,
]


@pytest.mark.parametrize("body", BODIES)
def test_clients_parse_the_same_json_as_starlette_rendered(body: object) -> None:
    ours = JSONResponse(body)
    theirs = responses.JSONResponse(body)
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    assert ours.headers["content-length"] == str(len(ours.body))


def test_a_float_with_no_json_form_is_null_not_a_server_error() -> None:
    with pytest.raises(ValueError):
        responses.JSONResponse({"cost": math.nan})
    assert json.loads(JSONResponse({"cost": math.nan, "x": math.inf}).body) == {
        "cost": None,
        "x": None,
    }


def test_a_lone_surrogate_is_still_refused() -> None:
    """No invalid UTF-8 reaches a client: the route's error handling answers instead."""
    with pytest.raises(UnicodeEncodeError):
        JSONResponse({"text": "\ud800"})
