"""The declared RPC result schemas hold for what a real guardian answers.

One guardian process with fake providers, a secret store and a query database; every method
in the table is called over the admin socket (which permits them all) and its answer is
validated against `METHODS[name].result`, the schema the sandbox's stubs rely on.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from protocol.adminaddr import open_admin_channel
from protocol.channel import SocketChannel
from protocol.client import RPCClient
from protocol.methods import METHODS, Surface
from protocol.schema import validate
from tests.fakes.providers import FakeBrave, FakeOpenAI
from tests.helpers import GuardianProcess
from tests.pg import PostgresServer

CALLER = {"ip": "127.0.0.1", "user_agent": "pytest"}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeBrave]]:
    openai, brave = FakeOpenAI(name="openai").start(), FakeBrave(name="brave").start()
    yield openai, brave
    openai.stop()
    brave.stop()


@pytest.fixture
def guardian_full(
    fakes: tuple[FakeOpenAI, FakeBrave], postgres: PostgresServer, pg_database: str
) -> Iterator[GuardianProcess]:
    openai, brave = fakes
    database = pg_database.rsplit("/", 1)[-1]
    postgres.psql(
        "CREATE TABLE products (id int, name text); INSERT INTO products VALUES (1, 'a')", database
    )
    config = f"""
[LLM_PROVIDER.openai]
base_url = "{openai.base}/v1"
allow_insecure = "true"
env_key = "OPENAI_API_KEY"
default_model = "gpt-test"
[LLM_PROVIDER.openai_END]
[SEARCH_PROVIDER.brave]
base_url = "{brave.base}/res/v1/web/search"
allow_insecure = "true"
env_key = "BRAVE_API_KEY"
[SEARCH_PROVIDER.brave_END]
[MODEL.text-embedding-test]
provider = "openai"
[MODEL.text-embedding-test_END]
[DB_QUERY]
tables = "products"
[DB_QUERY_END]
"""
    env = {
        "OPENAI_API_KEY": "k-openai-123456",
        "BRAVE_API_KEY": "k-brave-123456",
        "DB_QUERY_URL": pg_database,
        "SEALGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    process = GuardianProcess(config_text=config, env=env).start()
    yield process
    process.stop()


@pytest.fixture
async def admin(guardian_full: GuardianProcess) -> AsyncIterator[RPCClient]:
    async def connect() -> SocketChannel:
        return await open_admin_channel(guardian_full.admin_path)

    rpc = RPCClient(connect, client_name="ctl", call_timeout=60)
    rpc.start()
    assert await rpc.wait_connected(5)
    yield rpc
    await rpc.close()


def _sealed(**params: Any) -> dict[str, Any]:
    return {"caller": CALLER, **params}


#: Every method, in an order that sets up what the later ones need.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("health", {}),
    ("status", {}),
    ("providers", {}),
    ("llm.complete", _sealed(tool="llm_complete", prompt="hi")),
    ("search.web", _sealed(tool="web_search", query="q")),
    ("models.info", _sealed()),
    ("llm.embed", _sealed(model="text-embedding-test", input=["a", "bb"])),
    ("db.query", _sealed(sql="SELECT id, name FROM products")),
    ("users.add", {"name": "ada", "password": "correct horse battery", "role": "user"}),
    ("users.list", {}),
    ("users.passwd", {"name": "ada", "password": "another long password"}),
    ("users.role", {"name": "ada", "role": "admin"}),
    ("users.lock", {"name": "ada"}),
    ("users.unlock", {"name": "ada"}),
    ("auth.login", _sealed(username="ada", password="another long password")),
    ("tokens.issue", {"user": "ada", "label": "laptop"}),
    ("tokens.list", {}),
    ("sessions.list", {}),
    ("audit.tail", {"since": 0}),
    ("usage.report", {"since": 0, "by": "user"}),
    ("mcp.servers", {}),
    ("secrets.set", {"name": "EXTRA_KEY", "value": "v-123456789"}),
    ("secrets.list", {}),
    ("secrets.history", {"name": "EXTRA_KEY"}),
    ("secrets.delete", {"name": "EXTRA_KEY"}),
    ("config.check", {"text": "[HUB]\n[HUB_END]\n", "source": "x.pyfun"}),
    ("config.reload", {}),
    ("sessions.revoke", {"user": "ada"}),
    ("oauth.clients", {}),
    ("oauth.grants", {}),
    ("audit.verify", {}),
    ("audit.prove", {"id": "0"}),
    ("audit.consistency", {"size": 1}),
]
#: Run after the special cases below, which still need the user.
LAST: list[tuple[str, dict[str, Any]]] = [("users.delete", {"name": "ada"})]
#: Methods checked elsewhere in this module or needing a live session/connection phase.
SPECIAL = {"hello", "llm.stream", "auth.verify", "auth.logout", "tokens.revoke", "secrets.rekey"}
#: Need a real upstream MCP server: checked against their schemas in
#: tests/e2e/test_upstream_mcp.py.
SPECIAL |= {"mcp.diff", "mcp.approve"}
#: The sandbox socket's own methods, checked against their schemas in test_oauth_rpc.py,
#: test_usage_mine.py and tests/security/test_count_tokens.py.
SANDBOX_ONLY = {name for name, spec in METHODS.items() if Surface.ADMIN not in spec.surfaces}


def test_every_method_is_checked_here() -> None:
    assert {name for name, _ in CALLS + LAST} | SPECIAL | SANDBOX_ONLY == set(METHODS)
    assert SANDBOX_ONLY == {n for n in METHODS if n.startswith("oauth.")} - {
        "oauth.clients",
        "oauth.grants",
    } | {
        "usage.mine",
        "tasks.start",
        "tasks.get",
        "tasks.cancel",
        "llm.count_tokens",
        "receipts.get",
        "mcp.list",
        "mcp.call",
        "relay.session_open",
        "relay.session_check",
        "relay.listen",
        "relay.post",
    }  # test_usage_mine.py, test_call_tasks.py, tests/security/test_count_tokens.py,
    # tests/e2e/test_receipts.py, tests/e2e/test_upstream_mcp.py, test_relay_rpc.py


async def test_every_answer_matches_its_declared_result_schema(
    admin: RPCClient, tmp_path: Any
) -> None:
    answers: dict[str, Any] = {}
    for name, params in CALLS:
        result = await admin.call(name, params)
        validate(METHODS[name].result, result)
        answers[name] = result
    validate(METHODS["hello"].result, admin.hello)

    async with admin.stream("llm.stream", _sealed(tool="llm_complete", prompt="hi")) as stream:
        async for _ in stream:
            pass
    validate(METHODS["llm.stream"].result, stream.result)

    session = answers["auth.login"]["session"]
    caller = {**CALLER, "credential": session}
    validate(METHODS["auth.verify"].result, await admin.call("auth.verify", {"caller": caller}))
    validate(METHODS["auth.logout"].result, await admin.call("auth.logout", {"caller": caller}))
    token = answers["tokens.issue"]["token"]
    validate(METHODS["tokens.revoke"].result, await admin.call("tokens.revoke", {"token": token}))

    key_file = tmp_path / "new_key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    key_file.chmod(0o644)
    validate(
        METHODS["secrets.rekey"].result,
        await admin.call("secrets.rekey", {"new_key_file": str(key_file)}),
    )
    for name, params in LAST:
        validate(METHODS[name].result, await admin.call(name, params))
    background = answers["status"]["background"]
    assert set(background["tasks"]) == {
        "usage-ledger",
        "secret-store-poll",
        "audit-checkpoints",
        "call-tasks",
        "mcp-upstreams",
        "broadcast",
        "relay",
        "mcp-upstreams-served",
    }
    assert background["usage_ledger"]["capacity"] > 0
