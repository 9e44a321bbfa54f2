"""One source for the chat request's fields: a field added to `ChatFields` in
`protocol/contract.py`, and nowhere else, is documented in `/openapi.json`, accepted by
`/v1/chat/completions`' check, passed on to `llm.complete`, and taken by the guardian.

The edit is made for real, on a copy of `protocol/` that a child Python imports first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = "    temperature: Temperature | UnsetType | None = UNSET\n"
ADDED = "    seed: Annotated[int, Meta(ge=0)] | UnsetType | None = UNSET\n"

PROBE = """
import json, sys
from protocol.contract import LlmParams, decode_params
from protocol.errors import InvalidParams
from sandbox.openai_api import _chat_request
from sandbox.openapi import document

body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 7}
chat = _chat_request(body)
fields = chat.llm_fields()
caller = {"ip": "127.0.0.1", "user_agent": "t"}
taken = decode_params(LlmParams, {"caller": caller, "tool": "llm_complete", **fields})
refused = _chat_request({**body, "seed": -1})
print(json.dumps({
    "documented": document()["components"]["schemas"]["ChatRequest"]["properties"].get("seed"),
    "passed_on": fields.get("seed"),
    "guardian_takes": taken.seed,
    "refusal": json.loads(refused.body)["error"]["message"],
}))
"""


def test_a_field_added_once_is_documented_checked_and_passed_on(tmp_path: Path) -> None:
    contract = tmp_path / "protocol" / "contract.py"
    shutil.copytree(ROOT / "protocol", tmp_path / "protocol")
    text = contract.read_text()
    assert text.count(ANCHOR) == 1, "ChatFields' last field moved: update ANCHOR"
    contract.write_text(text.replace(ANCHOR, ANCHOR + ADDED))
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {
        "documented": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
        "passed_on": 7,
        "guardian_takes": 7,
        "refusal": "'seed' must be at least 0",
    }
