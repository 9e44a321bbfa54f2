"""Request bodies that are valid JSON but cannot cross the RPC link, or cannot be parsed at
all, get a typed 400, never a 500 with a traceback in the sandbox's log.

Found by Schemathesis (tests/reliability/test_openapi.py): a lone surrogate escape
(`"\\udc00"`) or an integer past 64 bits made msgpack raise inside the sandbox, and on the
streaming path that escaped the route as a 500; JSON nested 50,000 deep raised
RecursionError in the body parser. The same path also answered 500 when the guardian link
dropped between the auth check and the stream's start.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from protocol.client import RPCClient
from protocol.errors import InvalidParams
from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.security.common import provider_block
from tests.security.stackdb import user_with_token

CHAT = '{"model": "m", "stream": %s, "messages": [{"role": "user", "content": %s}]}'
MESSAGES = (
    '{"model": "m", "max_tokens": 5, "stream": %s, "messages": [{"role": "user", "content": %s}]}'
)
BODIES = [
    ("/v1/chat/completions", CHAT % ("true", '"\\udc00"')),
    ("/v1/chat/completions", CHAT % ("false", '"\\udc00"')),
    ("/v1/chat/completions", CHAT % ("true", '"x"}], "max_tokens": 1' + "0" * 30 + ', "x": [{')),
    ("/v1/chat/completions", CHAT % ("true", "[" * 50_000 + "]" * 50_000)),
    ("/v1/embeddings", '{"model": "m", "input": "\\udc00"}'),
    ("/v1/messages", MESSAGES % ("true", '"\\udc00"')),
    ("/v1/messages", MESSAGES % ("false", '"\\udc00"')),
    ("/v1/messages", MESSAGES % ("true", '"x"}], "max_tokens": 1' + "0" * 30 + ', "x": [{')),
    ("/v1/messages", "[" * 50_000 + "]" * 50_000),
    ("/v1/responses", '{"model": "m", "stream": true, "input": "\\udc00"}'),
    ("/v1/responses", '{"model": "m", "input": "\\udc00"}'),
    ("/v1/responses", '{"model": "m", "input": "x", "max_output_tokens": 1' + "0" * 30 + "}"),
    ("/v1/responses", "[" * 50_000 + "]" * 50_000),
    ("/api", '{"tool": "llm_complete", "params": {"prompt": "\\udc00"}}'),
    ("/api", "[" * 50_000),
    ("/auth/login", '{"username": "\\udc00", "password": "x"}'),
    ("/auth/login", "{" * 50_000),
]


def test_unsendable_and_unparsable_bodies_get_a_typed_400(
    stack_factory: Callable[..., Stack],
) -> None:
    fake = FakeOpenAI(name="fake").start()
    try:
        stack = stack_factory(config_text=provider_block(fake, keyed=False))
        check_bodies(stack)
    finally:
        fake.stop()


def check_bodies(stack: Stack) -> None:
    token = user_with_token(stack, "u", "admin")
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    for path, body in BODIES:
        answer = httpx.post(f"{stack.url}{path}", content=body, headers=headers, timeout=30)
        assert answer.status_code == 400, (path, body[:80], answer.status_code, answer.text)
        if path.startswith("/v1/messages"):  # Anthropic's shape
            assert answer.json()["error"]["type"] == "invalid_request_error", answer.text
        else:
            assert answer.json()["error"]["code"] == "invalid_params"
    assert "Traceback" not in stack.logs(), stack.logs()[-3000:]


@pytest.mark.parametrize(
    "params",
    [{"text": "\udc00"}, {"n": 2**70}],
)
def test_the_rpc_client_refuses_what_it_cannot_encode(params: dict) -> None:
    async def never() -> None:
        raise AssertionError("not connected in this test")

    client = RPCClient(never, client_name="sandbox")  # type: ignore[arg-type]
    with pytest.raises(InvalidParams):
        client._frame(1, "llm.complete", params)
