"""Guardian start-up: read settings, configuration and secrets, bind, serve until told to stop.

Settings come from the guardian's environment (the supervisor passes it whole, since the
guardian is the process meant to hold secrets):

    HUB_CONFIG         the .pyfun file                      default ./.pyfun
    HUB_ENV_FILE       env file with secrets                default ./.env
    HUB_RUNTIME_DIR    runtime directory                    default ./var
    HUB_SANDBOX_UID    the uid allowed on guardian.sock     default: our own uid
    HUB_LOG_LEVEL      debug | info | warning | error       default: [HUB] log_level
    CREDENTIALS_DIRECTORY   systemd credentials (LoadCredential=)

Exit status 78 (EX_CONFIG) means "cannot boot with this configuration": the supervisor stops
instead of restarting in a loop. A database that does not answer is tried again for `[HUB]
db_connect_wait_s` first; a malformed DATABASE_URL or refused credentials end the boot at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guardian import logs, protections
from guardian.auth import Auth
from guardian.dbquery import QueryRunners
from guardian.ledger import UsageLedger
from guardian.limits import Limits, replica_name
from guardian.outbound import TRANSPORTS, Outbound
from guardian.redact import Redactor
from guardian.router import Router
from guardian.secrets import load_secrets
from guardian.secretstore import SecretStore, find_master_key
from guardian.server import GuardianServer
from guardian.state import GuardianState, Snapshot
from guardian.storage import open_storage
from guardian.storage.base import StorageError
from guardian.tasks import TaskSet
from protocol import __version__
from protocol.methods import Surface
from protocol.pyfun import PyfunConfig, PyfunError, parse
from protocol.runtime import RuntimeLayout

EX_CONFIG = 78
STORE_POLL_S = 2.0

logger = logging.getLogger("sealgate.guardian")


def read_config(path: Path) -> PyfunConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PyfunError(str(path), 0, "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PyfunError(str(path), 0, f"cannot read the configuration: {exc}") from None
    return parse(text, str(path))


def build_snapshot(
    config: PyfunConfig, environ: Mapping[str, str], store: Mapping[str, str] | None = None
) -> Snapshot:
    wanted = {
        key
        for p in (*config.llm_providers.values(), *config.search_providers.values())
        for key in p.env_keys
    }
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    secrets = load_secrets(
        wanted=wanted,
        environ=environ,
        env_file=Path(environ.get("HUB_ENV_FILE", ".env")),
        credentials_dir=Path(credentials) if credentials else None,
        store=store,
    )
    return Snapshot.build(config, secrets)


def sandbox_uid_from(environ: Mapping[str, str]) -> int:
    """The uid allowed on guardian.sock: HUB_SANDBOX_UID (the supervisor sets it), else the
    user HUB_SANDBOX_USER names (systemd units), else our own uid (single-uid mode)."""
    if environ.get("HUB_SANDBOX_UID"):
        return int(environ["HUB_SANDBOX_UID"])
    if environ.get("HUB_SANDBOX_USER"):
        try:
            return pwd.getpwnam(environ["HUB_SANDBOX_USER"]).pw_uid
        except KeyError:
            raise KeyError(f"HUB_SANDBOX_USER={environ['HUB_SANDBOX_USER']!r} is no user") from None
    return os.getuid()


class Guardian:
    """The running guardian: state, server and the signal-driven main loop."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.config_path = Path(environ.get("HUB_CONFIG", ".pyfun")).resolve()
        self.layout = RuntimeLayout.from_environ(environ)  # HUB_RUNTIME_DIR, HUB_DATA_DIR
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()

    async def run(self) -> int:
        redactor = Redactor()
        logs.configure(self.environ.get("HUB_LOG_LEVEL", "info"), redactor)
        try:
            config = read_config(self.config_path)
        except PyfunError as exc:
            logger.error("cannot start: %s", exc)
            return EX_CONFIG
        snapshot = build_snapshot(config, self.environ)
        redactor.update(snapshot.secrets.values_to_redact())
        if "HUB_LOG_LEVEL" not in self.environ:
            logging.getLogger().setLevel(config.hub.log_level.upper())
        for warning in config.warnings:
            logger.warning("%s", warning)

        transport = self.environ.get("SEALGATE_HTTP_TRANSPORT", "aiohttp")
        if transport not in TRANSPORTS:
            logger.error("cannot start: SEALGATE_HTTP_TRANSPORT must be one of %s", TRANSPORTS)
            return EX_CONFIG
        try:
            sandbox_uid = sandbox_uid_from(self.environ)
        except (KeyError, ValueError) as exc:
            logger.error("cannot start: %s", exc)
            return EX_CONFIG
        os.umask(0o077)
        for directory in (self.layout.guardian_dir, self.layout.run_dir):
            if not directory.is_dir():
                logger.error("cannot start: runtime directory %s is missing", directory)
                return EX_CONFIG
        # Whoever created it (the supervisor, systemd's StateDirectory=), it is ours alone.
        os.chmod(self.layout.guardian_dir, 0o700)
        try:
            storage = await open_storage(
                snapshot.secrets.get("DATABASE_URL"),
                self.layout.guardian_db,
                connect_wait_s=config.hub.db_connect_wait_s,
            )
        except StorageError as exc:
            logger.error("cannot start: database: %s", exc)
            return EX_CONFIG
        key, origin = find_master_key(self.environ, config.hub.master_key_file)
        store = SecretStore(storage, key, "" if key else origin)
        await store.start()
        if store.enabled:
            logger.info(
                "secret store on (master key from %s): %d secret(s)", origin, len(store.values)
            )
            snapshot = build_snapshot(config, self.environ, self._store_values(store))
            redactor.update(snapshot.secrets.values_to_redact())
        state = GuardianState(
            config_path=self.config_path,
            snapshot=snapshot,
            redactor=redactor,
            database=storage.describe(),
            storage=storage,
            store=store,
        )
        outbound = Outbound(transport)
        tasks = TaskSet()
        ledger = UsageLedger(storage)
        tasks.start("usage-ledger", ledger.run)
        state.tasks, state.ledger = tasks, ledger
        limits = Limits(storage, replica_name(self.layout.root))
        await limits.start()
        state.auth = Auth(state, storage, self.environ, limits)
        await state.auth.start()
        state.router = Router(state, outbound, ledger, limits, key_used=store.mark_used)
        state.queries = QueryRunners()  # follows DB_QUERY_URL across reloads
        server = GuardianServer(
            state, sandbox_uid=sandbox_uid, max_frame_size=config.hub.max_frame_size
        )
        try:
            admin_address = await protections.listen_admin(
                server, self.layout, single_uid=sandbox_uid == os.getuid()
            )
        except OSError as exc:
            logger.error("cannot start: cannot bind the admin socket: %s", exc)
            return EX_CONFIG
        await server.listen(self.layout.guardian_socket, Surface.SANDBOX, 0o660)
        state.protections = lambda: protections.report(
            sandbox_uid=sandbox_uid,
            admin_address=admin_address,
            sandbox_pids=server.sandbox_pids(),
        )
        state.reload = lambda: self._reload(state, server)
        state.refresh_secrets = lambda: self._refresh_secrets(state, server)
        tasks.start("secret-store-poll", lambda: self._poll_store(state, server))
        self._install_signals()
        logger.info(
            "guardian %s ready: llm providers [%s], search providers [%s], sandbox uid %d",
            __version__,
            ", ".join(snapshot.llm_providers) or "none",
            ", ".join(snapshot.search_providers) or "none",
            sandbox_uid,
        )
        logger.info(
            "protections: %s, guardian dumpable %s, kernel Landlock ABI %d, admin socket %s",
            "two uids" if sandbox_uid != os.getuid() else "ONE uid",
            "yes" if protections.dumpable() else "no",
            protections.kernel_landlock_abi(),
            admin_address,
        )
        while not self._stop.is_set():
            reload_wait = asyncio.create_task(self._reload_requested.wait())
            stop_wait = asyncio.create_task(self._stop.wait())
            await asyncio.wait({reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            reload_wait.cancel()
            stop_wait.cancel()
            await asyncio.gather(reload_wait, stop_wait, return_exceptions=True)
            if self._reload_requested.is_set() and not self._stop.is_set():
                self._reload_requested.clear()
                try:
                    self._reload(state, server)
                except PyfunError as exc:
                    logger.error("reload refused, the old configuration stays: %s", exc)
        logger.info("guardian stopping")
        await tasks.close()
        await server.close()
        await store.flush_usage()
        await ledger.close()
        await outbound.aclose()
        if state.queries is not None:
            await state.queries.close()
        await storage.close()
        return 0

    @staticmethod
    def _store_values(store: SecretStore | None) -> dict[str, str]:
        return {name: s.value for name, s in store.values.items()} if store else {}

    def _refresh_secrets(self, state: GuardianState, server: GuardianServer) -> None:
        """The secret store changed: the same configuration with the new secrets."""
        before = state.snapshot
        snapshot = build_snapshot(before.config, self.environ, self._store_values(state.store))
        state.swap(snapshot)
        if (snapshot.tools, snapshot.llm_providers, snapshot.search_providers) != (
            before.tools,
            before.llm_providers,
            before.search_providers,
        ):
            server.broadcast(
                "config.changed",
                {
                    "tools": list(snapshot.tools),
                    "llm_providers": list(snapshot.llm_providers),
                    "search_providers": list(snapshot.search_providers),
                },
            )

    async def _poll_store(self, state: GuardianState, server: GuardianServer) -> None:
        """Pick up secret changes made by other replicas sharing the database."""
        store = state.store
        while store is not None and store.enabled:
            await asyncio.sleep(STORE_POLL_S)
            try:
                await store.flush_usage()
                if await store.changed():
                    await store.reload()
                    self._refresh_secrets(state, server)
                    logger.info("secret store changed elsewhere: secrets reloaded")
            except StorageError as exc:
                logger.warning("secret store poll failed: %s", exc)

    def _reload(self, state: GuardianState, server: GuardianServer) -> dict[str, Any]:
        """Re-read configuration and secrets and swap them in whole; on any error raise
        `PyfunError` and keep the old ones."""
        config = read_config(self.config_path)
        snapshot = build_snapshot(config, self.environ, self._store_values(state.store))
        state.swap(snapshot)
        for warning in config.warnings:
            logger.warning("%s", warning)
        logger.info("configuration reloaded (sha256 %s)", config.sha256[:12])
        names = {
            "tools": list(snapshot.tools),
            "llm_providers": list(snapshot.llm_providers),
            "search_providers": list(snapshot.search_providers),
        }
        server.broadcast("config.changed", names)
        return {"ok": True, "sha256": config.sha256, **names}

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)


def main() -> int:
    import uvloop

    # Before anything reads a secret: our environ and memory hold them.
    protections.make_undumpable()

    guardian = Guardian(dict(os.environ))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(guardian.run())


if __name__ == "__main__":
    sys.exit(main())
