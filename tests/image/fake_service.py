"""bench/fake_provider.py's fakes inside the SealGate container of the compose test's stack
(tests/image/compose.test.yaml): every wire format on 127.0.0.1:8900 of the container.
Run with the image's Python, the checkout's tests/ and bench/ mounted under /src."""

import sys

sys.path.insert(0, "/src")

from aiohttp import web

from bench.fake_provider import DEFAULT_PORT, fakes


def main() -> None:
    app = web.Application()
    for fake in fakes(0.0):
        fake._loop.close()  # each fake's own loop is for tests that run it in a thread
        fake.routes(app)
    web.run_app(app, host="127.0.0.1", port=DEFAULT_PORT, access_log=None, print=None)


if __name__ == "__main__":
    main()
