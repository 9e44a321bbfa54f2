"""Schemathesis against the running stack's own `/openapi.json`: generated requests (valid and
not) to `/v1`, `/api` and `/auth`, each answered without a 500, without a traceback, with a
status, content type and body the document declares.

Bounded: `SEALGATE_SCHEMATHESIS_EXAMPLES` per operation (25 by default; `make soak` runs more).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fakes.providers import FakeOpenAI
from tests.helpers import Stack
from tests.security.common import provider_block
from tests.security.stackdb import user_with_token

EXAMPLES = int(os.environ.get("SEALGATE_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Counted for docs/RELIABILITY.md (printed at the end of the module).
CASES_RUN: list[str] = []


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Stack, str]]:
    fake = FakeOpenAI(name="fake").start()
    config = provider_block(fake, keyed=False) + (
        '[MODEL.m]\nprovider = "fake"\nmax_output_tokens = "256"\n[MODEL.m_END]\n'
    )
    running = Stack(config_text=config)
    try:
        running.start()
        yield running, user_with_token(running, "fuzzer", "admin")
    finally:
        running.cleanup()
        fake.stop()
        print(f"\nschemathesis: {len(CASES_RUN)} generated requests answered as documented")


@pytest.fixture(scope="module")
def api_schema(stack: tuple[Stack, str]) -> schemathesis.BaseSchema:
    running, _token = stack
    document = httpx.get(f"{running.url}/openapi.json", timeout=10)
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")
    return schemathesis.openapi.from_url(f"{running.url}/openapi.json")


def operations(api_schema: schemathesis.BaseSchema) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


# Schemathesis's own pytest plugin (`from_fixture(...).parametrize()`) fails under pytest 9
# ("'Function' object has no attribute '_nodeid'"), so each operation's strategy runs under
# Hypothesis's `given` here, as the plugin would run it.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented(
    api_schema: schemathesis.BaseSchema, stack: tuple[Stack, str], mode: GenerationMode
) -> None:
    _running, token = stack
    for operation in operations(api_schema):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            headers = dict(case.headers or {})
            headers.setdefault("Authorization", f"Bearer {token}")
            response = case.call(headers=headers, timeout=30)
            CASES_RUN.append(case.operation.label)
            assert "Traceback" not in response.text and 'File "/' not in response.text
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception:
                print(_running.logs()[-3000:])  # the sandbox's or guardian's own account
                raise

        call()
    assert "Traceback" not in _running.logs(), _running.logs()[-3000:]


def test_the_document_is_public_and_exempt_from_request_checks(
    stack: tuple[Stack, str],
) -> None:
    running, _token = stack
    # no credential, a foreign Host: served like /healthz (a load balancer or a doc viewer)
    answer = httpx.get(f"{running.url}/openapi.json", headers={"Host": "docs.example"}, timeout=10)
    assert answer.status_code == 200
    assert set(answer.json()["paths"]) == {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/responses",
        "/v1/receipts/{receipt_id}",
        "/api",
        "/auth/login",
        "/auth/logout",
    }
    assert "fake" not in answer.text  # nothing of the configuration
