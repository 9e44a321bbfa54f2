"""hypercorn's settings for the sandbox, with the Date header's text made once a second.

`Config.response_headers` formats the Date header for every answer (wsgiref's
`format_date_time`, about 1% of the sandbox's time at 16 requests at once,
bench/RESULTS.md); its text changes once a second, so it is made once a second here. The
rest of the method is hypercorn's own.
"""

from __future__ import annotations

import time
from wsgiref.handlers import format_date_time

from hypercorn.config import Config


class ServerConfig(Config):
    def __init__(self) -> None:
        super().__init__()
        self.include_date_header = False  # written by `response_headers` below instead
        self._second = -1
        self._date = b""

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        now = int(time.time())
        if now != self._second:
            self._date = format_date_time(now).encode("ascii")
            self._second = now
        return [(b"date", self._date), *super().response_headers(protocol)]
