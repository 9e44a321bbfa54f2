"""An `Outbound` that answers from a script in memory: no socket, no clock but the event
loop's. The call path's unit tests run the whole fallback, retry, key and budget matrix on it;
what it was sent is kept (`sent`) for them to check."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from guardian.calls.outbound import status_failure
from guardian.providers.types import HttpCall, ProviderFailure


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer: a JSON body, an error status, a failure before any answer
    (`fail`: "timeout" or "connection"), or an SSE stream (`events`, each one `data:`)."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    fail: str = ""
    events: tuple[str, ...] | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Sent:
    provider: str
    call: HttpCall

    @property
    def key(self) -> str:
        """The key the request carried, in whichever header its wire format uses."""
        headers = self.call.headers
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        return bearer or headers.get("x-api-key", "") or headers.get("x-goog-api-key", "")

    @property
    def json(self) -> Any:
        return json.loads(self.call.body) if self.call.body is not None else self.call.json


Script = Callable[[str, HttpCall], Reply]


class MemoryOutbound:
    """Answers each request with `script(provider, call)`, or the next reply queued for the
    provider (`replies`); a provider with nothing queued answers `default`."""

    def __init__(
        self,
        replies: dict[str, list[Reply]] | None = None,
        *,
        script: Script | None = None,
        default: Reply | None = None,
    ) -> None:
        self.replies = {name: list(queue) for name, queue in (replies or {}).items()}
        self.script = script
        self.default = default
        self.sent: list[Sent] = []

    def _next(self, provider: str, call: HttpCall) -> Reply:
        self.sent.append(Sent(provider, call))
        if self.script is not None:
            return self.script(provider, call)
        queue = self.replies.get(provider)
        if queue:
            return queue.pop(0)
        if self.default is not None:
            return self.default
        raise AssertionError(f"no reply scripted for {provider}")

    async def _arrive(self, reply: Reply, timeout: float) -> None:
        if reply.delay_s:
            if reply.delay_s >= timeout:
                await asyncio.sleep(timeout)
                raise ProviderFailure("timeout", f"timed out after {timeout:g} s")
            await asyncio.sleep(reply.delay_s)
        if reply.fail == "timeout":
            raise ProviderFailure("timeout", f"timed out after {timeout:g} s")
        if reply.fail == "connection":
            raise ProviderFailure("connection", "connection failed (ClientConnectorError)")
        if reply.status >= 400:
            raise status_failure(reply.status, reply.headers, json.dumps(reply.body).encode())

    async def json(self, provider: str, call: HttpCall, *, timeout: float, max_bytes: int) -> Any:
        reply = self._next(provider, call)
        await self._arrive(reply, timeout)
        return reply.body

    @contextlib.asynccontextmanager
    async def stream(
        self, provider: str, call: HttpCall, *, timeout: float, max_bytes: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        reply = self._next(provider, call)
        await self._arrive(reply, timeout)
        if reply.events is None:
            raise ProviderFailure("malformed", "malformed reply: a stream that is not SSE")
        yield self._chunks(reply.events)

    @staticmethod
    async def _chunks(events: tuple[str, ...]) -> AsyncIterator[bytes]:
        for event in events:
            if event == "!connection":  # the connection breaks here
                raise ProviderFailure("connection", "connection failed (ClientPayloadError)")
            yield f"data: {event}\n\n".encode()
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        return None
