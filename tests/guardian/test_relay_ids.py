"""Streamable HTTP session ids any replica can check (guardian/relay_ids.py)."""

from __future__ import annotations

import base64
import json

import pytest

from guardian.relay_ids import MAX_AGE_S, SKEW_S, SessionIds

KEY = bytes(range(32))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_id_names_its_principal_and_checks_on_any_replica_with_the_key() -> None:
    clock = Clock()
    issued = SessionIds(KEY, clock).issue("u_alice")
    other_replica = SessionIds(KEY, clock)
    assert other_replica.principal_of(issued) == "u_alice"
    assert other_replica.check(issued, "u_alice")
    assert issued.startswith("sg1.") and len(issued) < 200


def test_ids_are_unique() -> None:
    ids = SessionIds(KEY, Clock())
    assert len({ids.issue("u_alice") for _ in range(100)}) == 100


def test_another_principal_is_refused() -> None:
    ids = SessionIds(KEY, Clock())
    assert not ids.check(ids.issue("u_alice"), "u_bob")


def test_another_deployments_key_is_refused() -> None:
    clock = Clock()
    issued = SessionIds(bytes(32), clock).issue("u_alice")
    assert SessionIds(KEY, clock).principal_of(issued) is None


def _retarget(session_id: str, principal: str) -> str:
    prefix, body, mac = session_id.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["p"] = principal
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{prefix}.{forged}.{mac}"


def test_a_tampered_id_is_refused() -> None:
    ids = SessionIds(KEY, Clock())
    issued = ids.issue("u_alice")
    assert ids.principal_of(_retarget(issued, "u_bob")) is None
    prefix, body, mac = issued.split(".")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    assert ids.principal_of(f"{prefix}.{body}.{flipped}") is None


@pytest.mark.parametrize(
    "value",
    ["", "sg1", "sg1..", "sg2.a.b", "sg1.a.b.c", "x" * 600, "sg1.%%%.***", "0123456789abcdef" * 2],
)
def test_malformed_ids_are_refused_without_an_error(value: str) -> None:
    assert SessionIds(KEY, Clock()).principal_of(value) is None


def test_an_expired_id_and_one_from_the_future_are_refused() -> None:
    clock = Clock()
    ids = SessionIds(KEY, clock)
    issued = ids.issue("u_alice")
    clock.now += MAX_AGE_S - 1
    assert ids.check(issued, "u_alice")
    clock.now += 2
    assert not ids.check(issued, "u_alice")
    clock.now -= MAX_AGE_S + SKEW_S + 10
    assert not ids.check(issued, "u_alice")


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionIds(b"short")
