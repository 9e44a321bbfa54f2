"""Slow readers of long streamed answers: what each costs the sandbox and the guardian.

    .venv/bin/python bench/slow_readers.py [--readers 1000] [--words 20000]

The fake provider answers `--words` words, one stream event each (bench/fake_provider.py
--reply-words). `--readers` clients each open a streamed `/v1/chat/completions`, read up to
the first chunk of text and then stop reading, holding the connection. After a few seconds
the sandbox's and the guardian's RSS are read; then every reader hangs up. With the stream
window (guardian <-> sandbox, `stream.ack`) a stopped reader holds a bounded number of chunks
in the sandbox and the rest of the answer waits upstream. Target (issue 33, target 4): 1,000
slow readers in at most 300 MB. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import FakeProcess, machine_line
from bench.vs_litellm import BODY, rss_mb, stack_config
from tests.helpers import Stack

REQUEST = json.dumps({**BODY, "stream": True}).encode()


async def stop_after_first_chunk(port: int) -> asyncio.StreamWriter:
    """One reader: the request, the answer up to its first text, then no more reading."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(REQUEST)}\r\n\r\n".encode()
        + REQUEST
    )
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b'"content": "w0'), 60)
    return writer


async def run(readers: int, words: int, hold_s: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * readers + 256)), hard))
    print(f"{readers} slow readers of a {words}-word streamed answer")
    print(machine_line())
    with FakeProcess("--reply-words", str(words)) as fake:
        stack = Stack(config_text=stack_config(fake.base), single_uid=True)
        stack.start()
        try:
            sandbox, guardian = stack.pid_of("sandbox"), stack.pid_of("guardian")
            idle = rss_mb(sandbox), rss_mb(guardian)
            started = time.monotonic()
            writers = []
            for batch in range(0, readers, 50):
                writers += await asyncio.gather(
                    *(
                        stop_after_first_chunk(stack.port)
                        for _ in range(batch, min(readers, batch + 50))
                    )
                )
            await asyncio.sleep(hold_s)  # everything that would pile up has piled up by now
            held = rss_mb(sandbox), rss_mb(guardian)
            print(f"  opened in {time.monotonic() - started:.1f} s, then held {hold_s:g} s")
            print(f"  sandbox RSS: idle {idle[0]:.0f} MB, with the readers {held[0]:.0f} MB")
            print(f"  guardian RSS: idle {idle[1]:.0f} MB, with the readers {held[1]:.0f} MB")
            print(
                f"  target 4: {len(writers)} slow readers add {held[0] - idle[0]:.0f} MB to the"
                f" sandbox and {held[1] - idle[1]:.0f} MB to the guardian; the sandbox holds"
                f" {held[0]:.0f} MB in all (<= 300 MB for 1,000)"
            )
            for writer in writers:
                writer.close()
            await asyncio.sleep(3.0)
            after = rss_mb(sandbox), rss_mb(guardian)
            print(
                f"  3 s after every reader hung up: sandbox {after[0]:.0f} MB,"
                f" guardian {after[1]:.0f} MB (what the allocator keeps)"
            )
        finally:
            stack.stop()
            stack.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1000, help="slow readers (max 2000)")
    parser.add_argument("--words", type=int, default=20_000, help="words per answer (max 200000)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds held (max 60)")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            run(
                max(1, min(args.readers, 2000)),
                max(10, min(args.words, 200_000)),
                max(0.5, min(args.hold, 60.0)),
            )
        )


if __name__ == "__main__":
    main()
