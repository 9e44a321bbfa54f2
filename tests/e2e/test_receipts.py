"""Receipts on `/v1` (issue 30 item 4): a signed receipt with every answer, its id at the
start of a stream, `GET /v1/receipts/ID` for the caller's own only, and the standalone
verifier (`tools/audit_verify.py`) checking a receipt from a real call and its ledger row's
inclusion proof."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.mcp_client import mcp_session
from tests.fakes.providers import FakeAnthropic
from tests.helpers import ROOT, Stack
from tests.security.stackdb import user_with_token

WORDS = 30
TEXT = " ".join(f"w{index:02d}" for index in range(WORDS))
BODY = {"model": "claude-test", "messages": [{"role": "user", "content": "count for me"}]}


def config(fake: FakeAnthropic) -> str:
    return f"""
[HUB_LIMITS]
audit_checkpoint_sec = "1"
[HUB_LIMITS_END]
[LLM_PROVIDER.ant]
api = "anthropic"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "claude-test"
timeout_sec = "20"
[LLM_PROVIDER.ant_END]
[MODEL.claude-test]
provider = "ant"
cost_input_per_1m = "3"
cost_output_per_1m = "15"
max_output_tokens = "512"
[MODEL.claude-test_END]
"""


class Setup:
    def __init__(self, stack: Stack, alice: str, bob: str) -> None:
        self.stack, self.alice, self.bob = stack, alice, bob
        self.vkey = stack.runtime / "guardian" / "audit" / "verifier_key"

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )

    def fetch(self, token: str, receipt_id: str, *, proof: bool) -> dict[str, Any]:
        """The caller's receipt once its row is written (and its proof, once a checkpoint
        covers it)."""
        deadline = time.monotonic() + 15
        with self.client(token) as client:
            while True:
                answer = client.get(f"/v1/receipts/{receipt_id}")
                if answer.status_code == 200 and (answer.json()["proof"] or not proof):
                    result: dict[str, Any] = answer.json()
                    return result
                assert time.monotonic() < deadline, (answer.status_code, answer.text)
                time.sleep(0.2)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic(name="ant", reply_text=TEXT)
    server.event_delay_s = 0.02
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def setup(fake: FakeAnthropic) -> Iterator[Setup]:
    stack = Stack(config_text=config(fake))
    try:
        stack.start()
        yield Setup(
            stack, user_with_token(stack, "alice", "user"), user_with_token(stack, "bob", "user")
        )
    finally:
        stack.cleanup()


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(ROOT / "tools" / "audit_verify.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        check=False,
    )


def decoded(receipt: str) -> dict[str, Any]:
    body = receipt.split(".")[0]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return result


def test_an_answer_carries_a_receipt_the_standalone_verifier_checks(
    setup: Setup, tmp_path: Path
) -> None:
    with setup.client(setup.alice) as client:
        answer = client.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 200, answer.text
    receipt, receipt_id = answer.headers["sealgate-receipt"], answer.headers["sealgate-receipt-id"]
    said = decoded(receipt)
    assert said["id"] == receipt_id and said["principal"] == "alice"
    assert said["model"] == "claude-test" and said["provider"] == "ant"
    usage = answer.json()["usage"]
    assert said["input_tokens"] == usage["prompt_tokens"]
    assert said["output_tokens"] == usage["completion_tokens"]
    assert said["cost_usd"] == answer.json()["sealgate"]["cost_usd"] and said["outcome"] == "ok"
    assert len(said["request_digest"]) == 64 and "count for me" not in json.dumps(said)
    (tmp_path / "receipt").write_text(receipt)
    checked = tool("receipt", str(tmp_path / "receipt"), "--key", str(setup.vkey))
    assert checked.returncode == 0 and checked.stdout.startswith("ok: receipt "), checked.stdout

    # later: the same receipt from the stored row, its leaf and an inclusion proof
    later = setup.fetch(setup.alice, receipt_id, proof=True)
    assert later["receipt"].split(".")[0] == receipt.split(".")[0]  # the same body, re-signed
    assert setup.fetch(setup.alice, receipt_id, proof=False)["receipt"] == later["receipt"]
    assert later["leaf_index"] == later["proof"]["index"]
    (tmp_path / "later").write_text(later["receipt"])
    checked = tool("receipt", str(tmp_path / "later"), "--key", str(setup.vkey))
    assert checked.returncode == 0 and checked.stdout.startswith("ok: receipt "), checked.stdout
    (tmp_path / "proof.json").write_text(json.dumps(later["proof"]))
    proved = tool(
        "receipt",
        str(tmp_path / "receipt"),
        "--proof",
        str(tmp_path / "proof.json"),
        "--key",
        str(setup.vkey),
    )
    assert proved.returncode == 0, proved.stdout
    assert "its ledger row is leaf" in proved.stdout

    # a receipt claiming fewer tokens does not verify
    forged = dict(said, output_tokens=1)
    from guardian.tlog import canonical  # the same encoding, to forge a well-formed body

    text = base64.urlsafe_b64encode(canonical.encode_bytes(forged)).rstrip(b"=").decode()
    (tmp_path / "forged").write_text(text + "." + receipt.split(".")[1])
    refused = tool("receipt", str(tmp_path / "forged"), "--key", str(setup.vkey))
    assert refused.returncode == 1 and "does not verify" in refused.stdout


def test_another_callers_receipt_is_not_found(setup: Setup) -> None:
    with setup.client(setup.alice) as client:
        answer = client.post("/v1/chat/completions", json=BODY)
    receipt_id = answer.headers["sealgate-receipt-id"]
    setup.fetch(setup.alice, receipt_id, proof=False)
    with setup.client(setup.bob) as client:
        theirs = client.get(f"/v1/receipts/{receipt_id}")
        missing = client.get("/v1/receipts/0123456789abcdef0123456789abcdef")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"].replace(receipt_id, "X") == (
        missing.json()["error"]["message"].replace("0123456789abcdef0123456789abcdef", "X")
    )


def test_a_stream_has_its_receipt_id_first_and_its_receipt_last(
    setup: Setup, tmp_path: Path
) -> None:
    with (
        setup.client(setup.alice) as client,
        client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as answer,
    ):
        assert answer.status_code == 200
        receipt_id = answer.headers["sealgate-receipt-id"]
        events = [
            json.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: {")
        ]
    extra = events[-1]["sealgate"]
    assert extra["receipt_id"] == receipt_id and decoded(extra["receipt"])["id"] == receipt_id
    (tmp_path / "receipt").write_text(extra["receipt"])
    assert tool("receipt", str(tmp_path / "receipt"), "--key", str(setup.vkey)).returncode == 0


def test_an_aborted_streams_receipt_fetched_afterwards_shows_what_was_billed(
    setup: Setup,
) -> None:
    with (
        setup.client(setup.alice) as client,
        client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as answer,
    ):
        receipt_id = answer.headers["sealgate-receipt-id"]
        seen = 0
        for line in answer.iter_lines():
            if '"content":"w' in line.replace(" ", ""):
                seen += 1
                if seen == 5:
                    break
    later = setup.fetch(setup.alice, receipt_id, proof=False)
    said = decoded(later["receipt"])
    assert said["outcome"] == "cancelled" and said["output_tokens"] >= 5 and said["cost_usd"] > 0


async def test_an_mcp_tool_result_and_the_json_api_carry_the_receipt(
    setup: Setup, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {setup.alice}"}
    async with mcp_session(setup.stack.url, headers=headers) as client:
        answer = await client.call_tool("llm_complete", {"prompt": "count for me"})
    meta = answer.meta or {}
    receipt = meta["sealgate/receipt"]
    assert decoded(receipt)["id"] == meta["sealgate/receipt_id"]
    (tmp_path / "receipt").write_text(receipt)
    assert tool("receipt", str(tmp_path / "receipt"), "--key", str(setup.vkey)).returncode == 0

    with setup.client(setup.alice) as http:
        api = http.post("/api", json={"tool": "llm_complete", "params": {"prompt": "count"}})
    assert api.status_code == 200, api.text
    said = decoded(api.json()["meta"]["receipt"])
    assert said["id"] == api.json()["meta"]["receipt_id"] and said["tool"] == "llm_complete"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {**BODY, "max_tokens": 100, "stream": True}),
        ("/v1/responses", {"model": "claude-test", "input": "count for me", "stream": True}),
    ],
)
def test_the_other_dialects_streams_carry_the_id_first_and_the_receipt_last(
    setup: Setup, path: str, body: dict[str, Any]
) -> None:
    with (
        setup.client(setup.alice) as client,
        client.stream("POST", path, json=body) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        receipt_id = answer.headers["sealgate-receipt-id"]
        text = "".join(answer.iter_text())
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    extras = [
        e.get("sealgate") or (e.get("response") or {}).get("sealgate")
        for e in events
        if e.get("sealgate") or (e.get("response") or {}).get("sealgate")
    ]
    assert extras and extras[-1]["receipt_id"] == receipt_id
    assert decoded(extras[-1]["receipt"])["id"] == receipt_id
