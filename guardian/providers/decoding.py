"""Content-Encoding of provider replies, decoded with a cap on the decoded size.

Providers, and proxies in front of them, may gzip or deflate a reply; the guardian asks for
only those two (`ACCEPT_ENCODING`) and decodes them itself, never holding more than the cap
however well the body compresses (a small body can inflate a thousandfold).
"""

from __future__ import annotations

import zlib

from guardian.providers.types import ProviderFailure

ACCEPT_ENCODING = "gzip, deflate"


class Decoder:
    """Decode one reply body fed chunk by chunk; raise once it decodes past `max_bytes`."""

    def __init__(self, content_encoding: str, max_bytes: int) -> None:
        encoding = content_encoding.strip().lower()
        self.max_bytes = max_bytes
        self.total = 0
        self._deflate = encoding == "deflate"
        if encoding in ("", "identity"):
            self._zlib: zlib._Decompress | None = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._deflate:
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise ProviderFailure(
                "malformed", f"reply has unsupported content-encoding {encoding!r}"
            )
        self._started = False

    def _count(self, piece: bytes) -> bytes:
        self.total += len(piece)
        if self.total > self.max_bytes:
            raise ProviderFailure("malformed", f"reply larger than {self.max_bytes} bytes")
        return piece

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            return self._count(data)
        out = bytearray()
        pending = data
        while pending:
            room = self.max_bytes - self.total + 1
            try:
                piece = self._zlib.decompress(pending, room)
            except zlib.error:
                if self._deflate and not self._started:
                    # "deflate" is meant to be zlib-wrapped; some servers send it raw
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._deflate = False
                    continue
                raise ProviderFailure("malformed", "reply is not valid compressed data") from None
            self._started = True
            out += self._count(piece)
            pending = self._zlib.unconsumed_tail
            if self._zlib.eof:
                break
        return bytes(out)

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            return self._count(self._zlib.flush())
        except zlib.error:
            raise ProviderFailure("malformed", "reply is not valid compressed data") from None
