"""A fuzzer against a live guardian's `guardian.sock`: random bytes and mutated valid frames,
many connections, while one well-behaved connection keeps calling. The guardian must never
die, never log a traceback, and keep answering the good connection.

Seeded and bounded (`SEALGATE_FUZZ_CONNECTIONS`, 400 by default; `make soak` runs more).
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgpack
import pytest

from protocol import PROTOCOL_VERSION
from protocol.client import RPCClient
from protocol.framing import encode
from protocol.methods import METHODS
from tests.fakes.providers import FakeOpenAI
from tests.helpers import GuardianProcess, rpc_as_sandbox
from tests.security.common import caller, provider_block

CONNECTIONS = int(os.environ.get("SEALGATE_FUZZ_CONNECTIONS", "400"))
SEED = int(os.environ.get("SEALGATE_FUZZ_SEED", "19"))
HELLO = {"protocol_version": PROTOCOL_VERSION, "client": "sandbox", "listen": ["127.0.0.1"]}

VALID = [
    [0, 2, "health", {}],
    [0, 3, "models.info", {"caller": caller(None)}],
    [0, 4, "llm.complete", {"caller": caller(None), "tool": "llm_complete", "prompt": "hi"}],
    [0, 5, "auth.verify", {"caller": caller("sg_not_a_token")}],
    [0, 6, "auth.login", {"caller": caller(None), "username": "u", "password": "p"}],
    [0, 7, "db.query", {"caller": caller(None), "sql": "SELECT 1"}],
    [2, "cancel", {"msgid": 4}],
    [0, 8, "users.list", {}],
]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**32, 2**64 - 1, -(2**63), rng.randrange(-1000, 1000)])
    if choice == 3:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if choice == 4:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if choice == 5:
        return rng.randbytes(rng.randrange(0, 40))
    if choice == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if choice == 7:
        return {
            _random_value(rng, 3): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))
        }
    return rng.choice(sorted(METHODS))


def _mutate_structure(rng: random.Random, frame: list[Any]) -> list[Any]:
    mutated = list(frame)
    index = rng.randrange(len(mutated))
    if rng.random() < 0.5 and isinstance(mutated[-1], dict):
        params = dict(mutated[-1])
        key = rng.choice([*params, "caller", "x", "prompt", "max_tokens"])
        params[key] = _random_value(rng)
        mutated[-1] = params
    else:
        mutated[index] = _random_value(rng)
    if rng.random() < 0.1:
        mutated.append(_random_value(rng))
    return mutated


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        if not raw:
            break
        position = rng.randrange(len(raw))
        operation = rng.randrange(4)
        if operation == 0:
            raw[position] ^= 1 << rng.randrange(8)
        elif operation == 1:
            del raw[position:]
        elif operation == 2:
            raw[position:position] = rng.randbytes(rng.randrange(1, 8))
        else:
            raw[position] = rng.choice([0x00, 0x7F, 0x80, 0xC1, 0xDD, 0xDF, 0xFF])
    return bytes(raw)


def case(rng: random.Random) -> bytes:
    """One connection's worth of bytes: after a good hello or not, then hostile frames."""
    kind = rng.randrange(6)
    hello = encode([0, 1, "hello", HELLO])
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:  # a length prefix announcing anything, then some of a body
        return struct.pack(">I", rng.choice([0, 1, 2**23, 2**23 + 1, 2**32 - 1])) + rng.randbytes(
            rng.randrange(0, 64)
        )
    if kind == 2:
        return _mutate_bytes(rng, hello)
    frames = [hello] if kind != 3 else []
    for _ in range(rng.randrange(1, 5)):
        frame = rng.choice(VALID)
        if rng.random() < 0.7:
            frame = _mutate_structure(rng, frame)
        try:
            body = msgpack.packb(frame, use_bin_type=True)
        except (OverflowError, ValueError, TypeError):
            body = rng.randbytes(16)
        if kind == 5:
            body = _mutate_bytes(rng, body)
        frames.append(struct.pack(">I", len(body)) + body)
    return b"".join(frames)


async def send_case(path: str, data: bytes) -> None:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(data)
        await writer.drain()
        if len(data) % 2:  # half the peers also close their side (seeded, like the data)
            writer.write_eof()
        # read whatever comes back until the guardian closes, or give up: a call may be waiting
        try:
            await asyncio.wait_for(reader.read(1 << 20), 0.3)
        except TimeoutError:
            pass
    except (ConnectionError, BrokenPipeError):
        pass  # the guardian closed a connection that broke the protocol: the expected answer
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(name="fake").start()
    yield server
    server.stop()


@pytest.fixture
def guardian(fake: FakeOpenAI) -> Iterator[GuardianProcess]:
    process = GuardianProcess(config_text=provider_block(fake, keyed=False)).start()
    yield process
    process.stop()


@pytest.fixture
async def good(guardian: GuardianProcess) -> AsyncIterator[RPCClient]:
    client = await rpc_as_sandbox(guardian.socket_path, 10)
    yield client
    await client.close()


async def test_the_guardian_survives_random_and_mutated_frames(
    guardian: GuardianProcess, good: RPCClient
) -> None:
    rng = random.Random(SEED)
    path = str(guardian.socket_path)
    stop = asyncio.Event()
    answered: list[float] = []

    async def well_behaved() -> None:
        while not stop.is_set():
            started = asyncio.get_running_loop().time()
            result = await good.call("models.info", {"caller": caller(None)}, timeout=10)
            assert "models" in result or result  # a real answer, every time
            answered.append(asyncio.get_running_loop().time() - started)
            await asyncio.sleep(0.01)

    runner = asyncio.ensure_future(well_behaved())
    sent = 0
    try:
        for batch_start in range(0, CONNECTIONS, 8):
            cases = [case(rng) for _ in range(min(8, CONNECTIONS - batch_start))]
            await asyncio.gather(*(send_case(path, data) for data in cases))
            sent += len(cases)
            assert guardian.process is not None and guardian.process.poll() is None, (
                f"the guardian died after {sent} fuzz connections:\n{guardian.logs()[-4000:]}"
            )
            assert not runner.done() or runner.exception() is None
    finally:
        stop.set()
        await runner
    assert sent == CONNECTIONS
    assert len(answered) > 10 and max(answered) < 5, (len(answered), max(answered))
    # still serving, and nothing on our side crashed
    assert (await good.call("health", {}))["status"] == "ok"
    logs = guardian.logs()
    assert "Traceback" not in logs, logs[-4000:]
    print(f"\nfuzz: {sent} hostile connections, {len(answered)} good calls answered")
