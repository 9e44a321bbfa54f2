"""Open mode (no users) is decided from where the sandbox really listens, and never covers
`/metrics` or `db_query`.

The attack: the shipped `.socket` unit invites `ListenStream=0.0.0.0:7860` while `.pyfun` still
says 127.0.0.1. The guardian used to decide "open" from `.pyfun` alone, so a stranger on the
network got the operator's keys, `db_query` and `/metrics`.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.world import World
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess
from tests.security.split import SandboxProcess


@pytest.fixture
def activated_on_all_addresses() -> Iterator[SandboxProcess]:
    guardian = GuardianProcess().start()
    sandbox = SandboxProcess(guardian, listen_on="0.0.0.0", inherit=True).start()
    try:
        sandbox.wait_linked()
        yield sandbox
    finally:
        sandbox.stop()
        guardian.stop()


def test_a_socket_activated_sandbox_on_0_0_0_0_is_not_open(
    activated_on_all_addresses: SandboxProcess,
) -> None:
    url = activated_on_all_addresses.url
    for request in (
        httpx.post(f"{url}/api", json={"tool": "list_active_tools", "params": {}}, timeout=10),
        httpx.get(f"{url}/v1/models", timeout=10),
        httpx.get(f"{url}/metrics", timeout=10),
    ):
        assert request.status_code == 401, request.text
        assert "users add" in request.json()["error"]["message"]
    # Any bearer token is not a way in either.
    response = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer x"}, timeout=10)
    assert response.status_code == 401
    logs = activated_on_all_addresses.guardian.logs()
    assert "sandbox listens on 0.0.0.0" in logs


def test_open_mode_on_loopback_still_refuses_metrics(w: World) -> None:
    response = httpx.get(f"{w.stack.url}/metrics", timeout=10)
    assert response.status_code == 401
    assert "users add" in response.json()["error"]["message"]
    # ... while the tools themselves are open, as documented.
    tools = httpx.post(
        f"{w.stack.url}/api", json={"tool": "list_active_tools", "params": {}}, timeout=10
    )
    assert tools.status_code == 200


async def test_open_mode_never_runs_db_query(pg_database: str) -> None:
    from protocol.channel import open_unix_channel
    from protocol.client import RPCClient
    from protocol.errors import Unauthenticated

    config = '[DB_QUERY]\ntables = "notes"\n[DB_QUERY_END]\n'
    guardian = GuardianProcess(config_text=config, env={"DATABASE_URL": pg_database}).start()
    client = RPCClient(
        lambda: open_unix_channel(str(guardian.socket_path)),
        client_name="sandbox",
        hello_params=LOOPBACK_SANDBOX_HELLO,
    )
    try:
        client.start()
        assert await client.wait_connected(10)
        assert "db_query" in client.hello["tools"]
        caller = {"ip": "127.0.0.1", "user_agent": "t"}
        with pytest.raises(Unauthenticated, match="users add"):
            await client.call("db.query", {"caller": caller, "sql": "SELECT 1"})
    finally:
        await client.close()
        guardian.stop()
