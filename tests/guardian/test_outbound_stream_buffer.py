"""A streamed provider reply whose reader waits (its stream window is full) holds little in
the guardian: aiohttp stops reading the socket after a small buffer, and the rest of the
answer waits in the kernel and at the provider (issue 33, target 4). A real fake provider
on loopback sends a long answer as fast as it can; twenty readers stop after 32 events."""

from __future__ import annotations

import asyncio
import tracemalloc

from guardian.calls.outbound import HttpOutbound
from guardian.providers.sse import events
from guardian.providers.types import HttpCall
from tests.fakes.providers import FakeOpenAI

READERS = 20
#: Client-side buffering per stalled reader, at most (it was about 860 KiB with aiohttp's
#: default buffer and this fake's answer).
MAX_PER_READER = 300 * 1024


async def test_a_waiting_stream_holds_a_small_buffer() -> None:
    fake = FakeOpenAI(
        name="openai", reply_text=" ".join(f"w{i}" for i in range(5000)), event_delay_s=0
    ).start()
    outbound = HttpOutbound()
    stalled, release = [], asyncio.Event()
    call = HttpCall(
        method="POST",
        url=f"{fake.base}/v1/chat/completions",
        headers={"authorization": "Bearer k", "content-type": "application/json"},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )

    async def reader() -> int:
        read = 0
        async with outbound.stream("openai", call, timeout=30, max_bytes=1 << 24) as chunks:
            async for _ in events(chunks, 1 << 20):
                read += 1
                if read == 32:
                    stalled.append(1)
                    await release.wait()
        return read

    tracemalloc.start()
    try:
        tasks = [asyncio.create_task(reader()) for _ in range(READERS)]
        async with asyncio.timeout(60):
            while len(stalled) < READERS:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # what would pile up has piled up by now
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(True, "*aiohttp/client_proto.py"),
                tracemalloc.Filter(True, "*aiohttp/streams.py"),
            ]
        )
        held = sum(stat.size for stat in snapshot.statistics("filename"))
        release.set()
        reads = await asyncio.gather(*tasks)
    finally:
        tracemalloc.stop()
        await outbound.aclose()
        fake.stop()
    assert held / READERS <= MAX_PER_READER, f"{held / READERS / 1024:.0f} KiB per reader"
    assert all(count > 5000 for count in reads)  # after the wait, the whole answer came
