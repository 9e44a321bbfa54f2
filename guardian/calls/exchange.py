"""The last layer of a running call: the job's request, with its key, sent on the outbound
and its reply read back, observed in the attempt's record as it goes."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

from guardian import telemetry
from guardian.calls.job import Job
from guardian.calls.outbound import DEFAULT_MAX_RESPONSE_BYTES, Outbound, translated
from guardian.calls.record import IDLE, SENT
from guardian.calls.streaming import read_stream
from guardian.providers.types import ChatResult, ProviderFailure


def reply_text(result: ChatResult) -> str:
    """What came back, as SealGate counts it when the provider reports no usage."""
    calls = json.dumps(result.tool_calls) if result.tool_calls else ""
    thinking = json.dumps(result.thinking) if result.thinking else ""
    return result.text + calls + thinking


class Exchange:
    """Sends one try and reads its reply: a whole JSON reply, or a stream to its end."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound

    async def send(self, job: Job) -> ChatResult:
        """One HTTP request in its own span: method, host and port, status; never the URL
        (a query may carry a key) nor a header or a body."""
        with telemetry.span(
            job.call.method.upper(), kind=telemetry.CLIENT, attributes=http_attributes(job)
        ) as span:
            try:
                return await self._send(job)
            except ProviderFailure as failure:
                if failure.status is not None:
                    span.set_attribute("http.response.status_code", failure.status)
                span.fail(telemetry.error_type_of(failure))
                raise

    async def _send(self, job: Job) -> ChatResult:
        call = job.call.keyed(job.adapter.auth(job.key))
        observed = job.observed
        observed.phase = SENT
        try:
            if job.emitter is None:
                body = await self.outbound.json(
                    job.provider.name,
                    call,
                    timeout=job.timeout,
                    max_bytes=DEFAULT_MAX_RESPONSE_BYTES,
                )
                observed.phase = IDLE
                result = job.adapter.parse_chat(body)
                observed.text_bytes += len(reply_text(result).encode("utf-8"))
                return result
            # The call's budget bounds a whole stream, or a provider that trickles (each
            # event inside `timeout`) would hold the call forever.
            remaining = job.deadline - time.monotonic()
            with translated(remaining):
                async with (
                    asyncio.timeout_at(asyncio.get_running_loop().time() + remaining),
                    self.outbound.stream(
                        job.provider.name,
                        call,
                        timeout=job.timeout,
                        max_bytes=DEFAULT_MAX_RESPONSE_BYTES,
                    ) as chunks,
                ):
                    return await read_stream(chunks, job.adapter, job.emitter, observed)
        except ProviderFailure as failure:
            # refused with a status, or never reached: nothing was consumed
            if observed.phase == SENT and failure.kind in ("status", "connection"):
                observed.phase = IDLE
            raise


def http_attributes(job: Job) -> dict[str, telemetry.Value]:
    """The outbound request's span attributes (HTTP client conventions)."""
    url = urlsplit(job.call.url)
    attributes: dict[str, telemetry.Value] = {
        "http.request.method": job.call.method.upper(),
        "server.address": url.hostname or "",
        "url.scheme": url.scheme,
    }
    port = url.port or (443 if url.scheme == "https" else 80)
    attributes["server.port"] = port
    return attributes
