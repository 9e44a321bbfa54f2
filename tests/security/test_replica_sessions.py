"""Session ids across replicas: a session opened on one replica can be used on another only
by the principal it was opened for (issue 29).

The attacks: a user replays another's `Mcp-Session-Id` on another replica (ids travel in
headers and logs); a user rewrites the principal inside a signed id; a user posts to another's
legacy SSE stream through another replica, which relays POSTs through the guardians. Each
gets the answer an unknown session gets (404), on every replica; the owner is served."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from tests.helpers import Stack, run_ctl
from tests.security.test_mcp_sessions import _open_sse

BOOTSTRAP = "sg_replica-sessions-bootstrap-0123456789"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "attack", "version": "1"},
    },
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}


@pytest.fixture
def replicas(stack_factory: Callable[..., Stack], pg_database: str) -> list[Stack]:
    env = {"DATABASE_URL": pg_database, "SEALGATE_BOOTSTRAP_TOKEN": BOOTSTRAP}
    first = stack_factory(env=env)
    return [first, stack_factory(env=env)]


def token(stack: Stack, user: str) -> str:
    admin = stack.runtime / "guardian" / "admin.sock"
    run_ctl(admin, "users", "add", user, stdin=f"{user}'s long password\n").check_returncode()
    issued = run_ctl(admin, "tokens", "issue", "--user", user)
    issued.check_returncode()
    return issued.stdout.strip()


def open_session(url: str, bearer: str) -> str:
    answer = httpx.post(
        f"{url}/mcp/", json=INIT, headers={**HEADERS, "authorization": f"Bearer {bearer}"}
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["mcp-session-id"]


def list_tools(url: str, bearer: str, session_id: str) -> int:
    headers = {**HEADERS, "authorization": f"Bearer {bearer}", "mcp-session-id": session_id}
    return httpx.post(f"{url}/mcp/", json=LIST, headers=headers, timeout=30).status_code


def retarget(session_id: str, principal: str) -> str:
    prefix, body, mac = session_id.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["p"] = principal
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{prefix}.{forged}.{mac}"


def test_a_session_id_serves_only_its_principal_on_every_replica(replicas: list[Stack]) -> None:
    one, two = replicas
    alice, mallory = token(one, "alice"), token(one, "mallory")
    session = open_session(one.url, alice)
    assert session.startswith("sg1.")
    # another principal replaying it: refused on the replica that opened it and on the other
    assert list_tools(two.url, mallory, session) == 404
    assert list_tools(one.url, mallory, session) == 404
    # the owner is served on both (the other replica takes the session up)
    assert list_tools(two.url, alice, session) == 200
    assert list_tools(one.url, alice, session) == 200
    # mallory's own session, its principal rewritten to alice's: the signature no longer fits
    own = open_session(one.url, mallory)
    payload = json.loads(base64.urlsafe_b64decode(session.split(".")[1] + "=="))
    forged = retarget(own, payload["p"])
    assert list_tools(two.url, alice, forged) == 404
    assert list_tools(two.url, mallory, forged) == 404
    # random and hostile ids alike
    for bogus in ("sg1.e30.AAAA", "0" * 32, "sg1." + "A" * 600, "x;y=z"):
        assert list_tools(two.url, alice, bogus) in (400, 404)


def test_a_legacy_sse_stream_takes_posts_only_from_its_principal_on_other_replicas(
    replicas: list[Stack],
) -> None:
    one, two = replicas
    alice, mallory = token(one, "alice"), token(one, "mallory")
    path, stop = _open_sse(one.url, alice)
    try:
        ping = {"jsonrpc": "2.0", "id": 3, "method": "ping"}
        refused = httpx.post(
            f"{two.url}{path}", json=ping, headers={"authorization": f"Bearer {mallory}"}
        )
        assert refused.status_code == 404 and refused.text == "Could not find session"
        accepted = httpx.post(
            f"{two.url}{path}", json=ping, headers={"authorization": f"Bearer {alice}"}
        )
        assert accepted.status_code == 202, accepted.text
        unknown = path.rsplit("=", 1)[0] + "=" + "0" * 32
        missing = httpx.post(
            f"{two.url}{unknown}", json=ping, headers={"authorization": f"Bearer {alice}"}
        )
        assert missing.status_code == 404
    finally:
        stop.set()
