"""A fake provider: a real aiohttp server on 127.0.0.1, in a thread of its own.

Each wire format subclasses `FakeServer`. Tests steer it through `behave()` (one-shot
behaviours, first in first out) or `default` and read what arrived in `requests`. Every
fake can answer 200, any error status (with Retry-After), hang past a timeout, send a
malformed body, stream in chunks, trickle a stream, break one with a malformed event or a
reset, and hold a stream open to see the client go away. With
`compression` set ("gzip" or "deflate") every reply, plain or streamed, is compressed, as a
provider or a proxy in front of one may do.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: `Behaviour.usage` left as is: the fake reports its own usage figures.
OWN_USAGE = "the fake's own"


@dataclass
class Behaviour:
    status: int = 200
    retry_after: str | None = None
    hang_s: float = 0.0  # sleep before answering (past the caller's timeout, say)
    malformed: bool = False  # 200 with a body that is not the documented shape
    text: str | None = None  # reply text; the fake's own by default
    stream_hold: bool = False  # stream: send the first chunk, then hold until the client leaves
    stream_abort_after: int | None = None  # stream: drop the connection after N events
    #: stream: after N events, one that is not valid SSE JSON (then the stream goes on)
    stream_malformed_after: int | None = None
    #: stream: the pause between events (a provider that trickles); the fake's own by default
    trickle_s: float | None = None
    error_message: str = "fake error"
    #: 200 with exactly these bytes and headers (a hostile or broken upstream)
    raw_body: bytes | None = None
    raw_headers: dict[str, str] = field(default_factory=dict)
    #: OpenAI: the reply's `usage` object, exactly (None: no usage at all); the fake's own by
    #: default (a provider that lies about, or omits, what a call consumed)
    usage: Any = OWN_USAGE


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeServer:
    name: str = "fake"
    reply_text: str = "Hello from the fake provider, in several chunks."
    #: Keys this fake refuses with 401, echoing the key in its error text (as some do).
    refuse_keys: set[str] = field(default_factory=set)
    default: Behaviour = field(default_factory=Behaviour)
    requests: list[Recorded] = field(default_factory=list)
    disconnects: int = 0
    #: Pause between stream events, so a stream really arrives in pieces.
    event_delay_s: float = 0.005
    #: "gzip" or "deflate": compress every reply (whatever the client asked for).
    compression: str | None = None

    def __post_init__(self) -> None:
        self._queue: list[Behaviour] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # control ---------------------------------------------------------------------------------
    def behave(self, *behaviours: Behaviour) -> None:
        self._queue.extend(behaviours)

    def _next(self) -> Behaviour:
        return self._queue.pop(0) if self._queue else self.default

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application(middlewares=[self._compress])
            self.routes(app)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()

    def _compress_response(self, response: web.StreamResponse) -> None:
        if self.compression and not response.prepared:
            response.enable_compression(web.ContentCoding(self.compression), strategy=None)

    @web.middleware
    async def _compress(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        self._compress_response(response)
        return response

    # to be filled in per wire format -----------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def key_of(self, request: web.Request) -> str | None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": "fake_error", "code": status}}

    # shared request handling -------------------------------------------------------------------
    async def record(self, request: web.Request) -> Recorded:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        recorded = Recorded(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        self.requests.append(recorded)
        return recorded

    async def preamble(
        self, request: web.Request
    ) -> tuple[Behaviour, Recorded, web.Response | None]:
        """Record the request, then: refused key, hang, or error status; else no response."""
        recorded = await self.record(request)
        behaviour = self._next()
        key = self.key_of(request)
        if key is not None and key in self.refuse_keys:
            return (
                behaviour,
                recorded,
                web.json_response(self.error_body(401, f"invalid api key {key}"), status=401),
            )
        if behaviour.hang_s and not await self._hang(request, behaviour.hang_s):
            return behaviour, recorded, web.Response(status=499)  # nobody is listening
        if behaviour.status != 200:
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else None
            return (
                behaviour,
                recorded,
                web.json_response(
                    self.error_body(behaviour.status, behaviour.error_message),
                    status=behaviour.status,
                    headers=headers,
                ),
            )
        if behaviour.raw_body is not None:
            raw = web.Response(body=behaviour.raw_body, headers=behaviour.raw_headers)
            return behaviour, recorded, raw
        if behaviour.malformed:
            garbled = web.Response(text='{"unexpected": tru', content_type="application/json")
            return behaviour, recorded, garbled
        return behaviour, recorded, None

    async def _hang(self, request: web.Request, seconds: float) -> bool:
        """Sleep before answering; False (a disconnect counted) if the client went away."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await asyncio.sleep(min(0.05, max(0.0, until - time.monotonic())))
            if request.transport is None or request.transport.is_closing():
                self.disconnects += 1
                return False
        return True

    def text_for(self, behaviour: Behaviour) -> str:
        return behaviour.text if behaviour.text is not None else self.reply_text

    @staticmethod
    def chunks_of(text: str) -> list[str]:
        words = text.split(" ")
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

    async def sse(
        self, request: web.Request, behaviour: Behaviour, events: list[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        self._compress_response(response)
        await response.prepare(request)
        try:
            for index, event in enumerate(events):
                if (
                    behaviour.stream_abort_after is not None
                    and index >= behaviour.stream_abort_after
                ):
                    assert request.transport is not None
                    request.transport.abort()  # mid-stream, as a crashed upstream would
                    return response
                if behaviour.stream_malformed_after == index:
                    await response.write(b'data: {"choices": [{"delta": {"content": "x\n\n')
                await response.write(event)
                delay = self.event_delay_s if behaviour.trickle_s is None else behaviour.trickle_s
                if delay:
                    await asyncio.sleep(delay)
                if behaviour.stream_hold and index >= 1:
                    while True:  # keep-alive comments until the client goes away
                        await asyncio.sleep(0.05)
                        await response.write(b": ping\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response
