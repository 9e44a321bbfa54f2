"""Sandbox start-up: settings from the allowlisted environment, then hypercorn on uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

from protocol.pyfun import PyfunError
from sandbox.app import build_app
from sandbox.guardian_link import GuardianLink
from sandbox.settings import load_settings

EX_CONFIG = 78
FORMAT = "%(asctime)s sandbox[%(process)d] %(levelname)s %(name)s: %(message)s"

logger = logging.getLogger("sealgate.sandbox")


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run() -> int:
    try:
        settings = load_settings(os.environ)
    except PyfunError as exc:
        logging.basicConfig(format=FORMAT, level="INFO")
        logger.error("cannot start: %s", exc)
        return EX_CONFIG
    logging.basicConfig(format=FORMAT, level=settings.log_level.upper())
    for noisy in ("httpx", "httpx2", "mcp", "fastmcp", "hypercorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    link = GuardianLink(
        settings.layout.guardian_socket, max_frame_size=settings.config.hub.max_frame_size
    )
    app = build_app(settings, link)

    config = Config()
    config.bind = [_bind(settings.host, settings.port)]
    config.graceful_timeout = 3.0
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("sandbox serving on http://%s (MCP at /mcp and /sse)", config.bind[0])
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    logger.info("sandbox stopped")
    return 0


def main() -> int:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run())


if __name__ == "__main__":
    sys.exit(main())
