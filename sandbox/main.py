"""Sandbox start-up: settings from the allowlisted environment, the listening socket, the
protections, and only then hypercorn on uvloop.

The order is the point. Up to `selfsandbox.apply` only the standard library and SealGate's
own `protocol`/`sandbox` modules run (this module imports nothing else at its top); every
third-party package (uvloop, hypercorn, the MCP and web stack, msgpack) is imported after
Landlock, seccomp and no_new_privs are in force, so a poisoned dependency's import-time code
runs under the full policy, with one thread, like everything after it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from protocol.logformat import JsonLines, log_format
from protocol.logsafety import protect
from protocol.protections import EXPOSED, SandboxProtections
from protocol.pyfun import PyfunError
from protocol.workers import WorkersError, sandbox_workers
from sandbox import selfsandbox
from sandbox.settings import SandboxSettings, load_settings

EX_CONFIG = 78
FORMAT = "%(asctime)s sandbox[%(process)d] %(levelname)s %(name)s: %(message)s"

logger = logging.getLogger("sealgate.sandbox")


SD_LISTEN_FDS_START = 3


#: The accept queue; the kernel caps it at net.core.somaxconn (4096 on most systems).
LISTEN_BACKLOG = 4096


#: How long the sandbox waits for the guardian's first answer before it serves regardless
#: (a guardian still reaching its database, or not started): long enough for a usual boot.
GUARDIAN_WAIT_S = 5.0


def listening_socket(
    host: str, port: int, environ: Mapping[str, str], *, workers: int = 1
) -> socket.socket:
    """The socket to serve: inherited from systemd (LISTEN_FDS for this pid), else our own.

    Bound here, before self-sandboxing forbids binding, and handed to hypercorn as fd://N.

    With several workers (`HUB_SANDBOX_WORKERS`), each binds the port itself with
    `SO_REUSEPORT` rather than inheriting one socket from the supervisor: the start-up order
    stays as it is (each sandbox binds under its own uid, then locks itself down; the
    supervisor, root, binds nothing and hands nothing to the internet-facing process), the
    kernel only lets sockets of the same uid join the group (another user cannot take a
    share of the port), and it spreads connections over the workers by their addresses'
    hash, where one shared queue lets whichever worker is idle take them all. The price: a
    connection still queued at a worker when it dies is reset.
    """
    if environ.get("LISTEN_FDS") and environ.get("LISTEN_PID") == str(os.getpid()):
        sock = socket.socket(fileno=SD_LISTEN_FDS_START)
        logger.info("serving the inherited socket %s (socket activation)", sock.getsockname())
        return sock
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if workers > 1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _two_uids(run_dir: Path) -> bool:
    """The guardian owns the socket directory: another owner means another uid."""
    try:
        return os.stat(run_dir).st_uid != os.getuid()
    except OSError:
        return False


def _span_ids() -> tuple[str, str] | None:
    """The current span's ids for JSON log lines, once `sandbox.tracing` is loaded (it is
    not imported here: start-up imports no third-party package before the protections)."""
    tracing = sys.modules.get("sandbox.tracing")
    return tracing.span_ids() if tracing is not None else None


@dataclass(frozen=True, slots=True)
class Prepared:
    """What start-up made before the protections: settings, the bound socket, the report."""

    settings: SandboxSettings
    sock: socket.socket
    protections: SandboxProtections


def prepare(environ: Mapping[str, str]) -> Prepared | int:
    """Settings, the listening socket, then the protections; an exit code when start-up
    cannot go on. Standard library and our own modules only."""
    try:
        settings = load_settings(environ)
    except PyfunError as exc:
        logging.basicConfig(format=FORMAT, level="INFO")
        logger.error("cannot start: %s", exc)
        return EX_CONFIG
    logging.basicConfig(format=FORMAT, level=settings.log_level.upper())
    for handler in logging.getLogger().handlers:
        protect(handler)  # no library below WARNING (aiosqlite's debug prints cached answers)
        if log_format(environ) == "json":  # JSON lines with the current span's ids
            handler.setFormatter(JsonLines("sandbox", _span_ids))
    for noisy in ("httpx", "httpx2", "mcp", "fastmcp", "hypercorn.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        workers = sandbox_workers(environ)
    except WorkersError as exc:
        logger.error("cannot start: %s", exc)
        return EX_CONFIG
    try:
        sock = listening_socket(settings.host, settings.port, environ, workers=workers)
    except OSError as exc:
        # in use, not ours to bind, no such address: another try would fail the same way
        reason = exc.strerror or type(exc).__name__
        logger.error(
            "cannot start: cannot listen on %s:%d: %s", settings.host, settings.port, reason
        )
        return EX_CONFIG
    config_path = Path(environ.get("HUB_CONFIG", ".pyfun"))
    applied = selfsandbox.apply(selfsandbox.sandbox_policy(settings.layout, config_path))
    protections = applied.protections(two_uids=_two_uids(settings.layout.run_dir))
    logger.info("self-sandboxing: %s", applied.describe())
    logger.info("protections in force: %s", protections.describe())
    if protections.exposed:
        logger.error("%s", EXPOSED)
    return Prepared(settings, sock, protections)


async def run(prepared: Prepared) -> int:
    """Serve; called once the protections are in force (third-party imports start here)."""
    from hypercorn.asyncio import serve

    from sandbox import hypercorn_patch
    from sandbox.app import build_app
    from sandbox.guardian_link import GuardianLink
    from sandbox.server_config import ServerConfig

    settings, sock, protections = prepared.settings, prepared.sock, prepared.protections
    listen_hosts = [str(sock.getsockname()[0])]
    link = GuardianLink(
        settings.layout.guardian_socket,
        max_frame_size=settings.config.hub.max_frame_size,
        listen_hosts=listen_hosts,
    )
    app = build_app(settings, link, listen_hosts)
    app.state.protections = protections
    # Started together with the guardian (the imports above overlap its boot), the sandbox
    # serves once the guardian answers `hello`; past the bound it serves anyway, and every
    # route but /healthz answers 503 until the guardian does.
    link.start()
    if not await link.wait_connected(GUARDIAN_WAIT_S):
        logger.warning(
            "the guardian has not answered within %.0f s (%s); serving, with 503 until it does",
            GUARDIAN_WAIT_S,
            link.last_error,
        )

    hypercorn_patch.apply()
    config = ServerConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.graceful_timeout = 3.0
    config.keep_alive_timeout = settings.config.hub.idle_timeout_s
    # hypercorn listens again with its own backlog (100 by default): past it, a burst of
    # connects is silently stalled by the kernel (found by the 10,000-connection flood)
    config.backlog = LISTEN_BACKLOG
    config.h11_max_incomplete_size = 32 * 1024  # request line and headers
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = sock.getsockname()
    logger.info("sandbox serving on http://%s:%d (MCP at /mcp and /sse)", address[0], address[1])
    # What start-up built (modules, the app, the tool schemas) lives as long as the process:
    # keep it out of every collection, which would otherwise scan it on each full pass.
    gc.freeze()
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    logger.info("sandbox stopped")
    return 0


def main() -> int:
    prepared = prepare(os.environ)
    if isinstance(prepared, int):
        return prepared
    import uvloop  # the first third-party import: under the protections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(prepared))


if __name__ == "__main__":
    sys.exit(main())
