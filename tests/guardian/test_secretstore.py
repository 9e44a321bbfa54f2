"""The encrypted secret store: sealing, tampering, wrong keys, rekey, and two replicas."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from guardian.secretstore import (
    SecretStore,
    SecretStoreError,
    find_master_key,
    parse_master_key,
    seal,
    unseal,
)
from guardian.storage import Storage, open_storage
from protocol.channel import open_unix_channel
from protocol.client import RPCClient
from tests.fakes.providers import FakeOpenAI
from tests.helpers import LOOPBACK_SANDBOX_HELLO, GuardianProcess, run_ctl

KEY = os.urandom(32)
OTHER_KEY = os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_round_trip_and_every_kind_of_tampering_is_detected() -> None:
    nonce, sealed = seal(KEY, "ANTHROPIC_API_KEY", 1, b"sk-value")
    assert unseal(KEY, "ANTHROPIC_API_KEY", 1, nonce, sealed) == b"sk-value"
    assert nonce != seal(KEY, "ANTHROPIC_API_KEY", 1, b"sk-value")[0]  # a fresh nonce each time
    flipped = bytearray(base64.b64decode(sealed))
    flipped[0] ^= 1
    for name, version, key, body in [
        ("ANTHROPIC_API_KEY", 1, KEY, base64.b64encode(bytes(flipped)).decode()),  # tampered
        ("GEMINI_API_KEY", 1, KEY, sealed),  # moved to another name
        ("ANTHROPIC_API_KEY", 2, KEY, sealed),  # moved to another version
        ("ANTHROPIC_API_KEY", 1, OTHER_KEY, sealed),  # wrong master key
    ]:
        with pytest.raises(InvalidTag):
            unseal(key, name, version, nonce, body)


def test_master_key_sources(tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match="32 bytes"):
        parse_master_key(b64(b"short"))
    key, origin = find_master_key({"SEALGATE_MASTER_KEY": b64(KEY)}, "")
    assert key == KEY and origin == "SEALGATE_MASTER_KEY"
    (tmp_path / "master_key").write_text(b64(OTHER_KEY))
    key, origin = find_master_key(
        {"CREDENTIALS_DIRECTORY": str(tmp_path), "SEALGATE_MASTER_KEY": b64(KEY)}, ""
    )
    assert key == OTHER_KEY and origin == "credential master_key"
    key, why = find_master_key({"HUB_ENV_FILE": str(tmp_path / "absent.env")}, "")
    assert key is None and "no master key" in why


def test_master_key_from_the_env_file(tmp_path: Path) -> None:
    """docs/OPERATIONS.md puts the key in the env file: it is read there, after the process
    environment."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"OTHER=1\nSEALGATE_MASTER_KEY={b64(KEY)}\n")
    key, origin = find_master_key({"HUB_ENV_FILE": str(env_file)}, "")
    assert key == KEY and origin == f"SEALGATE_MASTER_KEY in the env file {env_file}"
    key, origin = find_master_key(
        {"HUB_ENV_FILE": str(env_file), "SEALGATE_MASTER_KEY": b64(OTHER_KEY)}, ""
    )
    assert key == OTHER_KEY and origin == "SEALGATE_MASTER_KEY"
    env_file.write_text("SEALGATE_MASTER_KEY=bm90LTMyLWJ5dGVz\n")
    key, why = find_master_key({"HUB_ENV_FILE": str(env_file)}, "")
    assert key is None and "env file" in why and "32 bytes" in why


async def test_a_guardian_reads_its_master_key_from_its_env_file() -> None:
    guardian = GuardianProcess()
    (guardian.dir / ".env").write_text(f"SEALGATE_MASTER_KEY={b64(KEY)}\n")
    guardian.start()
    try:
        stored = ctl(guardian, "secrets", "set", "X_KEY", stdin="value-value\n")
        assert stored.returncode == 0, stored.stderr
        listing = ctl(guardian, "secrets", "list")
        assert listing.returncode == 0 and "X_KEY" in listing.stdout
        assert "secret store on (master key from SEALGATE_MASTER_KEY in the env file" in (
            guardian.logs()
        )
        assert b64(KEY) not in guardian.logs()
    finally:
        guardian.stop()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(None, tmp_path / "guardian.db")
    yield store
    await store.close()


async def test_store_versions_wrong_key_and_rekey(storage: Storage, tmp_path: Path) -> None:
    store = SecretStore(storage, KEY)
    await store.start()
    assert await store.set("ANTHROPIC_API_KEY", "sk-first-value") == 1
    assert await store.set("ANTHROPIC_API_KEY", "sk-second-value") == 2
    assert store.values["ANTHROPIC_API_KEY"].value == "sk-second-value"
    raw = (tmp_path / "guardian.db").read_bytes() + (tmp_path / "guardian.db-wal").read_bytes()
    assert b"sk-first-value" not in raw and b"sk-second-value" not in raw
    wrong = SecretStore(storage, OTHER_KEY)
    await wrong.start()
    assert not wrong.enabled and "does not open" in wrong.why_disabled
    with pytest.raises(SecretStoreError):
        await wrong.set("X", "y")  # nothing overwritten under a wrong key
    assert await store.rekey(OTHER_KEY) == 3  # two versions and the key check
    again = SecretStore(storage, OTHER_KEY)
    await again.start()
    assert again.values["ANTHROPIC_API_KEY"].value == "sk-second-value"
    old = SecretStore(storage, KEY)
    await old.start()
    assert not old.enabled
    await again.delete("ANTHROPIC_API_KEY")
    assert "ANTHROPIC_API_KEY" not in again.values


def ctl(guardian: GuardianProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_ctl(guardian.admin_path, *args, stdin=stdin)


def config(fake: FakeOpenAI) -> str:
    return f"""
[LLM_PROVIDER.fake]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
env_key = "FAKE_KEY_1, FAKE_KEY_2"
default_model = "m"
fallback_to = "other"
[LLM_PROVIDER.fake_END]
[LLM_PROVIDER.other]
api = "openai"
base_url = "{fake.base}/v1"
allow_insecure = "true"
requires_key = "false"
default_model = "other-model"
[LLM_PROVIDER.other_END]
"""


async def _client(guardian: GuardianProcess) -> RPCClient:
    client = RPCClient(
        lambda: open_unix_channel(str(guardian.socket_path)),
        client_name="sandbox",
        hello_params=LOOPBACK_SANDBOX_HELLO,
    )
    client.start()
    assert await client.wait_connected(5)
    return client


CALL = {
    "caller": {"ip": "127.0.0.1", "user_agent": "t"},
    "tool": "llm_complete",
    "prompt": "hi",
    "provider": "fake",
}


async def test_set_activates_delete_deactivates_and_values_never_show() -> None:
    fake = FakeOpenAI(name="fake").start()
    guardian = GuardianProcess(
        config_text=config(fake), env={"SEALGATE_MASTER_KEY": b64(KEY)}
    ).start()
    client = await _client(guardian)
    try:
        assert "fake" not in client.hello["llm_providers"]
        first, second = "sk-FAKE-first-key-00000000001", "sk-FAKE-second-key-0000000002"
        outputs = [
            ctl(guardian, "secrets", "set", "FAKE_KEY_1", stdin=first + "\n"),
            ctl(guardian, "secrets", "set", "FAKE_KEY_2", stdin=second + "\n"),
        ]
        assert all(o.returncode == 0 for o in outputs), outputs
        fake.refuse_keys = {first}
        for _ in range(2):  # whichever key the rotation starts with, the second one answers
            result = await client.call("llm.complete", CALL)
            assert result["provider"] == "fake" and result["fallback_path"] == []
        assert {r.headers["authorization"] for r in fake.requests} >= {f"Bearer {second}"}
        providers = ctl(guardian, "providers")
        assert "FAKE_KEY_1: secret store (failing (HTTP 401))" in providers.stdout
        listing = ctl(guardian, "secrets", "list")
        history = ctl(guardian, "--json", "secrets", "history", "FAKE_KEY_1")
        assert "FAKE_KEY_1" in listing.stdout and '"version": 1' in history.stdout
        assert ctl(guardian, "secrets", "delete", "FAKE_KEY_1").returncode == 0
        assert ctl(guardian, "secrets", "delete", "FAKE_KEY_2").returncode == 0
        fake.requests.clear()
        result = await client.call("llm.complete", CALL)
        assert result["provider"] == "other"  # fake is inactive again: skipped to its fallback
        assert result["fallback_path"][0]["error"].startswith("skipped")
        texts = [o.stdout + o.stderr for o in (*outputs, providers, listing, history)]
        db = guardian.runtime / "guardian" / "guardian.db"
        raw = db.read_bytes() + Path(f"{db}-wal").read_bytes()
        for value in (first, second):
            assert all(value not in text for text in texts)
            assert value.encode() not in raw
        ctl(guardian, "secrets", "set", "FAKE_KEY_1", stdin="x" * 20 + "\n")
        assert first not in guardian.logs() and second not in guardian.logs()
    finally:
        await client.close()
        guardian.stop()
        fake.stop()


async def test_rekey_in_flight_and_a_second_replica_sees_changes(
    pg_database: str, tmp_path: Path
) -> None:
    fake = FakeOpenAI(name="fake", event_delay_s=0.05).start()
    env = {"SEALGATE_MASTER_KEY": b64(KEY), "DATABASE_URL": pg_database}
    one = GuardianProcess(config_text=config(fake), env=env).start()
    two = GuardianProcess(config_text=config(fake), env=env).start()
    clients = [await _client(one), await _client(two)]
    try:
        assert (
            ctl(one, "secrets", "set", "FAKE_KEY_1", stdin="sk-FAKE-replicated-000001\n").returncode
            == 0
        )
        deadline = time.monotonic() + 6
        while True:  # the other replica picks the secret up within a few seconds
            result = await clients[1].call("llm.complete", CALL)
            if result["provider"] == "fake":
                break
            assert time.monotonic() < deadline, "replica two never saw the new secret"
            await asyncio.sleep(0.25)
        key_file = tmp_path / "new_key"
        key_file.write_text(b64(OTHER_KEY))
        key_file.chmod(0o644)
        calls = [asyncio.create_task(clients[i % 2].call("llm.complete", CALL)) for i in range(10)]
        rekey = ctl(one, "secrets", "rekey", str(key_file))
        results = await asyncio.gather(*calls)
        assert rekey.returncode == 0, rekey.stderr
        assert all(r["provider"] == "fake" for r in results)  # nothing lost in flight
        fresh = SecretStore(await open_storage(pg_database, tmp_path / "x.db"), OTHER_KEY)
        await fresh.start()
        assert fresh.values["FAKE_KEY_1"].value == "sk-FAKE-replicated-000001"
        await fresh.storage.close()
    finally:
        for client in clients:
            await client.close()
        one.stop()
        two.stop()
        fake.stop()


async def test_no_master_key_disables_the_store_and_says_why() -> None:
    guardian = GuardianProcess().start()
    try:
        listing = ctl(guardian, "secrets", "list")
        assert listing.returncode == 0 and "secret store off: no master key" in listing.stdout
        refused = ctl(guardian, "secrets", "set", "X_KEY", stdin="value-value\n")
        assert refused.returncode == 1 and "off" in refused.stderr
        assert "secret store disabled" in guardian.logs()
    finally:
        guardian.stop()
