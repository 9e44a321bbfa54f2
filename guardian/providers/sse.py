"""Server-sent events from a byte stream, as the providers' streaming APIs send them."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def events(
    chunks: AsyncIterator[bytes], max_event_bytes: int
) -> AsyncIterator[tuple[str, str]]:
    """Yield `(event, data)` per event; `event` is "" when the stream names none."""
    buffer = b""
    event = ""
    data: list[str] = []
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > max_event_bytes:
            raise ValueError(f"a stream event is larger than {max_event_bytes} bytes")
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "", []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value
    if data:
        yield event, "\n".join(data)
