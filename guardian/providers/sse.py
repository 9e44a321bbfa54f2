"""Server-sent events from a byte stream, as the providers' streaming APIs send them."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def events(
    chunks: AsyncIterator[bytes], max_event_bytes: int
) -> AsyncIterator[tuple[str, str]]:
    """Yield `(event, data)` per event; `event` is "" when the stream names none.

    `max_event_bytes` bounds one event (its lines so far plus a line still arriving), not a
    read: one large read may carry many small events.
    """
    buffer = b""
    event = ""
    data: list[str] = []
    event_bytes = 0  # bytes of the event being read, up to the last complete line
    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            event_bytes += len(raw) + 1
            if event_bytes > max_event_bytes:
                raise ValueError(f"a stream event is larger than {max_event_bytes} bytes")
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data, event_bytes = "", [], 0
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name == "event":
                    event = value
        if event_bytes + len(buffer) > max_event_bytes:
            raise ValueError(f"a stream event is larger than {max_event_bytes} bytes")
    if data:
        yield event, "\n".join(data)
