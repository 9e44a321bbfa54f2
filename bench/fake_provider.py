"""Fake LLM and search providers in a process of their own: for benchmarks, and to try
SealGate without any key.

    python bench/fake_provider.py [--port N] [--delay S] [--reply-words N]

One server on 127.0.0.1 speaks every wire format the tests' fakes speak, each on its own
documented path: Anthropic (`POST /v1/messages`), Gemini (`POST /v1beta/models/M:...`),
OpenAI-compatible (`POST /v1/chat/completions`, `/v1/embeddings`), Brave (`GET
/res/v1/web/search`) and Tavily (`POST /search`); streaming and tool calls included. Any key
is accepted. It prints its port on the first line and serves until stopped. `bench/fake.pyfun`
points SealGate at it on `DEFAULT_PORT`; `pyfun_for(port)` points it at another port, which is
what `make try` (bench/try.py) uses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from tests.fakes.base import FakeServer
from tests.fakes.providers import FakeAnthropic, FakeBrave, FakeGemini, FakeOpenAI, FakeTavily

REPLY = "The quick brown fox jumps over the lazy dog."
#: The port `bench/fake.pyfun` names in its base URLs: the one setting for the fakes' address.
DEFAULT_PORT = 8900
FAKE_PYFUN = Path(__file__).resolve().parent / "fake.pyfun"


def pyfun_for(port: int) -> str:
    """bench/fake.pyfun with every base URL on `port` instead of `DEFAULT_PORT`."""
    return FAKE_PYFUN.read_text().replace(
        f"http://127.0.0.1:{DEFAULT_PORT}/", f"http://127.0.0.1:{port}/"
    )


def fakes(delay_s: float, reply_words: int = 0) -> list[FakeServer]:
    """One fake per wire format; their paths do not overlap, so one app serves them all.
    `reply_words`: the OpenAI-compatible fake answers that many words instead (one stream
    event each), a long answer for the slow-reader bench."""
    openai_reply = " ".join(f"w{i}" for i in range(reply_words)) if reply_words else REPLY
    return [
        FakeAnthropic(
            name="anthropic", reply_text=f"(fake Anthropic) {REPLY}", event_delay_s=delay_s
        ),
        FakeGemini(name="gemini", reply_text=f"(fake Gemini) {REPLY}", event_delay_s=delay_s),
        FakeOpenAI(name="openai", reply_text=openai_reply, event_delay_s=delay_s),
        FakeBrave(name="brave"),
        FakeTavily(name="tavily"),
    ]


async def serve(port: int, delay_s: float, reply_words: int = 0) -> None:
    app = web.Application()
    for fake in fakes(delay_s, reply_words):
        fake._loop.close()  # each fake's own loop is for tests that run it in a thread
        fake.requests = deque(maxlen=100)  # type: ignore[assignment]  # a long run stays small
        fake.routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between stream events (default 0)"
    )
    parser.add_argument(
        "--reply-words",
        type=int,
        default=0,
        help="OpenAI-compatible answers of this many words (max 1,000,000; 0: the usual one)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port, args.delay, max(0, min(args.reply_words, 1_000_000))))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.exit(f"fake_provider: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}")


if __name__ == "__main__":
    main()
