"""Guardian start-up: read settings, configuration and secrets, bind, serve until told to stop.

Settings come from the guardian's environment (the supervisor passes it whole, since the
guardian is the process meant to hold secrets):

    HUB_CONFIG         the .pyfun file                      default ./.pyfun
    HUB_ENV_FILE       env file with secrets                default ./.env
    HUB_RUNTIME_DIR    runtime directory                    default ./var
    HUB_SANDBOX_UID    the uid allowed on guardian.sock     default: our own uid
    HUB_LOG_LEVEL      debug | info | warning | error       default: [HUB] log_level
    HUB_LOG_FORMAT     text | json (JSON lines with trace and span ids)   default text
    CREDENTIALS_DIRECTORY   systemd credentials (LoadCredential=)

Exit status 78 (EX_CONFIG) means "cannot boot with this configuration": the supervisor stops
instead of restarting in a loop. A database that does not answer is tried again for `[HUB]
db_connect_wait_s` first; a malformed DATABASE_URL or refused credentials end the boot at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pwd
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from guardian import logs, protections, telemetry_export
from guardian.broadcast import Broadcast
from guardian.call_tasks import CallTasks
from guardian.calls.keys import KeyRotation
from guardian.calls.outbound import HttpOutbound
from guardian.calls.router import Router
from guardian.dbquery import QueryRunners
from guardian.identity.accounts import Accounts
from guardian.identity.cache import PrincipalCache
from guardian.identity.credentials import Credentials
from guardian.identity.passwords import Passwords
from guardian.identity.sessions import Sessions
from guardian.identity.tokens import Tokens
from guardian.ledger import UsageLedger
from guardian.limits import Limits, replica_name
from guardian.liveconfig import LiveConfig, build_snapshot, read_config
from guardian.oauth.service import OAuthService
from guardian.redact import Redactor
from guardian.relay import Relay
from guardian.run_dir import unsafe_run_dir
from guardian.sandboxes import SandboxLinks
from guardian.secretstore import SecretStore, find_master_key
from guardian.server import GuardianServer
from guardian.services import Services
from guardian.snapshot import Snapshot
from guardian.storage import Storage, open_storage
from guardian.storage.base import StorageError
from guardian.tasks import TaskSet
from guardian.tlog.checkpoints import Checkpointer
from guardian.tlog.signing_key import SigningKeyError, load_signing_key
from guardian.upstream.launcher import Launcher
from guardian.upstream.pool import Upstreams
from guardian.upstream.service import UpstreamService
from guardian.upstream.watch import ServedWatch
from protocol import __version__
from protocol.logformat import log_format
from protocol.methods import Surface
from protocol.pyfun import PyfunConfig, PyfunError
from protocol.runtime import RuntimeLayout

EX_CONFIG = 78
STORE_POLL_S = 2.0

logger = logging.getLogger("sealgate.guardian")


def store_values(store: SecretStore) -> dict[str, str]:
    return {name: s.value for name, s in store.values.items()}


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
        logs.configure(
            self.environ.get("HUB_LOG_LEVEL", "info"), redactor, log_format(self.environ)
        )
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
        # run/ must be ours, and no name on its path replaceable by the sandbox's user
        unsafe = unsafe_run_dir(self.layout.run_dir, os.geteuid(), sandbox_uid)
        if unsafe is not None:
            logger.error("cannot start: the socket directory is not safe: %s", unsafe)
            return EX_CONFIG
        # One exit stack: whatever start-up opened is closed, in reverse order, however the
        # guardian ends (a clean stop, a refused boot, an error half-way through start-up).
        async with contextlib.AsyncExitStack() as stack:
            # OTLP export when OTEL_EXPORTER_OTLP_*ENDPOINT asks (guardian.telemetry_export)
            shutdown_tracing = telemetry_export.start(self.environ)
            if shutdown_tracing is not None:
                stack.callback(shutdown_tracing)
            return await self._serve(stack, config, snapshot, redactor, sandbox_uid)

    async def _serve(
        self,
        stack: contextlib.AsyncExitStack,
        config: PyfunConfig,
        snapshot: Snapshot,
        redactor: Redactor,
        sandbox_uid: int,
    ) -> int:
        try:
            storage = await open_storage(
                snapshot.secrets.get("DATABASE_URL"),
                self.layout.guardian_db,
                connect_wait_s=config.hub.db_connect_wait_s,
            )
        except StorageError as exc:
            logger.error("cannot start: database: %s", exc)
            return EX_CONFIG
        stack.push_async_callback(storage.close)
        key, origin = find_master_key(self.environ, config.hub.master_key_file)
        store = SecretStore(storage, key, "" if key else origin)
        await store.start()
        if store.enabled:
            logger.info(
                "secret store on (master key from %s): %d secret(s)", origin, len(store.values)
            )
            snapshot = build_snapshot(config, self.environ, store_values(store))
        limits_config = config.hub_limits
        try:
            signing_key = await load_signing_key(
                store, self.layout.guardian_db.parent, limits_config.audit_origin
            )
        except SigningKeyError as exc:
            logger.error("cannot start: audit log: %s", exc)
            return EX_CONFIG
        export = (
            Path(limits_config.audit_export_dir)
            if limits_config.audit_export_dir
            else self.layout.guardian_db.parent / "audit"
        )
        checkpoints = Checkpointer(
            storage,
            signing_key,
            export,
            every_s=limits_config.audit_checkpoint_sec,
            every_leaves=limits_config.audit_checkpoint_leaves,
        )
        try:
            checkpoints.start()
        except (OSError, ValueError, KeyError) as exc:
            logger.error("cannot start: audit checkpoints in %s: %s", export, exc)
            return EX_CONFIG
        services = await self._services(
            stack, snapshot, redactor, storage, store, sandbox_uid, checkpoints
        )
        server = GuardianServer(
            services, sandbox_uid=sandbox_uid, max_frame_size=config.hub.max_frame_size
        )
        # Closed first: the calls it ends record their endings before the rest closes.
        stack.push_async_callback(server.close)
        # Before the server: running tasks are cancelled as `shutdown`, record their
        # endings and are written as failed (a call does not outlive its guardian).
        stack.push_async_callback(services.call_tasks.close)
        try:
            await protections.listen_admin(
                server, self.layout, single_uid=sandbox_uid == os.getuid()
            )
        except OSError as exc:
            logger.error("cannot start: cannot bind the admin socket: %s", exc)
            return EX_CONFIG
        await server.listen(self.layout.guardian_socket, Surface.SANDBOX, 0o660)
        services.tasks.start("secret-store-poll", lambda: self._poll_store(services))
        self._install_signals()
        gc.freeze()  # start-up's long-lived objects stay out of every collection
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
            protections.admin_address(self.layout, single_uid=sandbox_uid == os.getuid()),
        )
        await self._until_stopped(services)
        logger.info("guardian stopping")
        return 0

    async def _until_stopped(self, services: Services) -> None:
        """Serve until SIGTERM or SIGINT; reload the configuration on each SIGHUP."""
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
                    services.live.reload()
                except PyfunError as exc:
                    logger.error("reload refused, the old configuration stays: %s", exc)

    async def _services(
        self,
        stack: contextlib.AsyncExitStack,
        snapshot: Snapshot,
        redactor: Redactor,
        storage: Storage,
        store: SecretStore,
        sandbox_uid: int,
        checkpoints: Checkpointer,
    ) -> Services:
        """Everything the handlers use, whole, before any socket is bound. Each part that
        holds something registers its close on `stack` as it is made; the stack closes them
        in reverse: the background tasks, what is still queued (secret use, the usage
        ledger), then the connections (providers, db_query, storage)."""
        queries = QueryRunners()  # follows DB_QUERY_URL across reloads
        stack.push_async_callback(queries.close)
        outbound = HttpOutbound()
        stack.push_async_callback(outbound.aclose)
        ledger = UsageLedger(storage)
        stack.push_async_callback(ledger.close)
        stack.push_async_callback(store.flush_usage)
        tasks = TaskSet(redactor=redactor)
        stack.push_async_callback(tasks.close)
        tasks.start("usage-ledger", ledger.run)
        tasks.start("audit-checkpoints", checkpoints.run)
        sandboxes = SandboxLinks()
        live = LiveConfig(
            path=self.config_path,
            environ=self.environ,
            snapshot=snapshot,
            redactor=redactor,
            store_values=lambda: store_values(store),
            announce=sandboxes.announce,
        )
        replica = replica_name(self.layout.root)
        # one source of configuration and identity for every replica (guardian/broadcast.py)
        broadcast = Broadcast(storage, replica)
        tasks.start("broadcast", broadcast.run)
        audited = _audited_reloads(storage)

        def reloaded(sha256: str) -> None:
            audited(sha256)
            broadcast.announce("config")

        live.on_reload = reloaded
        broadcast.on("config", lambda: _reload_quietly(live))
        limits = Limits(storage, replica)
        await limits.start()
        call_tasks = CallTasks(storage, replica)
        await call_tasks.recover()
        tasks.start("call-tasks", call_tasks.run)
        relay = Relay(storage, replica)
        await relay.start()
        tasks.start("relay", relay.run)
        cache = PrincipalCache()
        cache.on_forget = lambda: broadcast.announce("identity")
        broadcast.on("identity", cache.clear)
        accounts = Accounts(live, storage, self.environ, limits, cache, Passwords(self.environ))
        await accounts.start()
        sessions = Sessions(storage, accounts, cache)
        tokens = Tokens(storage, accounts, cache)
        oauth = OAuthService(live, storage, self.environ, limits, accounts, cache)
        router = Router(live, outbound, ledger, limits, KeyRotation(key_used=store.mark_used))
        router.receipt_key = checkpoints.key
        single_uid = sandbox_uid == os.getuid()
        launcher = Launcher.from_environ(self.environ)
        if launcher is not None:
            stack.callback(launcher.close)
        pool = Upstreams(live, launcher)
        stack.push_async_callback(pool.close)  # every session ends (stdio programs too)
        await pool.sync()
        tasks.start("mcp-upstreams", pool.follow)
        upstreams = UpstreamService(pool, storage, limits, ledger)
        watch = ServedWatch(upstreams, lambda servers: sandboxes.upstream_changed(servers))
        tasks.start("mcp-upstreams-served", watch.run)
        return Services(
            live=live,
            storage=storage,
            store=store,
            limits=limits,
            accounts=accounts,
            sessions=sessions,
            tokens=tokens,
            oauth=oauth,
            credentials=Credentials(accounts, tokens, sessions, oauth, cache),
            router=router,
            queries=queries,
            tasks=tasks,
            ledger=ledger,
            checkpoints=checkpoints,
            sandboxes=sandboxes,
            call_tasks=call_tasks,
            upstreams=upstreams,
            relay=relay,
            protections=lambda: protections.report(
                sandbox_uid=sandbox_uid,
                # read when asked: one uid, the name is drawn when the socket is bound
                admin_address=protections.admin_address(self.layout, single_uid=single_uid),
                sandbox_pids=sandboxes.pids(),
            ),
        )

    async def _poll_store(self, services: Services) -> None:
        """Pick up secret changes made by other replicas sharing the database."""
        store = services.store
        while store.enabled:
            await asyncio.sleep(STORE_POLL_S)
            try:
                await store.flush_usage()
                if await store.changed():
                    await store.reload()
                    services.live.refresh_secrets()
                    logger.info("secret store changed elsewhere: secrets reloaded")
            except StorageError as exc:
                logger.warning("secret store poll failed: %s", exc)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)


def _reload_quietly(live: LiveConfig) -> None:
    """Another replica reloaded: re-read our own file; on error the old configuration stays."""
    try:
        live.reload()
    except PyfunError as exc:
        logger.error("another replica reloaded; this one's file is refused: %s", exc)


def _audited_reloads(storage: Storage) -> Callable[[str], None]:
    """Each configuration reload (SIGHUP or `config reload`) becomes an audit entry, and so
    a leaf of the audit log; written beside the reload, which does not wait for it."""
    pending: set[asyncio.Task[None]] = set()

    async def write(sha256: str) -> None:
        try:
            await storage.add_audit("operator", "config.reload", "ok", "", f"sha256 {sha256}")
        except StorageError as exc:
            logger.error("could not audit the configuration reload: %s", exc)

    def audit(sha256: str) -> None:
        task = asyncio.get_running_loop().create_task(write(sha256))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return audit


def main() -> int:
    import uvloop

    # Before anything reads a secret: our environ and memory hold them.
    protections.make_undumpable()

    guardian = Guardian(dict(os.environ))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(guardian.run())


if __name__ == "__main__":
    sys.exit(main())
