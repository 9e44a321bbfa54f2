"""The main loop, like gunicorn's arbiter: check, prepare, start, watch, stop.

The guardian and the sandbox start together; the sandbox serves only once the guardian
answers `hello`, and stops with it if the guardian never does. SIGTERM and
SIGINT stop both children (the sandbox first) and exit 0; SIGHUP re-checks the secret files'
permissions and is forwarded to the guardian, which reloads. A child that dies is restarted
with backoff (`supervise.children`); when one cannot boot or fails too often, the supervisor
stops with it. Whatever a child forks and leaves behind is killed (`supervise.leftovers`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from protocol import __version__
from protocol.pyfun import PyfunError
from protocol.runtime import RuntimeLayout
from protocol.workers import WorkersError
from supervise import children as lifecycle
from supervise import preflight
from supervise.children import MAX_FAILED_STARTS, Child, State
from supervise.hardening import harden_self
from supervise.hello import admin_address, guardian_answers
from supervise.instance_lock import DEFAULT_LOCK_DIR, InstanceLock
from supervise.leftovers import become_subreaper, orphans, sweep
from supervise.outcomes import EX_CONFIG, EX_FAILED, EX_OK, EX_USAGE, Refusal
from supervise.runtime_dirs import prepare_runtime
from supervise.signals import SignalQueue
from supervise.upstreams import UpstreamLauncher
from supervise.users import Identity, check_secret_files

logger = logging.getLogger("sealgate.supervisor")
security_logger = logging.getLogger("sealgate.security")


class Supervisor:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self.config_path = Path(environ.get("HUB_CONFIG", ".pyfun")).resolve()
        self.env_file = Path(environ.get("HUB_ENV_FILE", ".env")).resolve()
        self.layout = RuntimeLayout.from_environ(environ)
        self.signals = SignalQueue()
        self.children: list[Child] = []
        self.guardian_id = Identity.current()
        self.sandbox_id = Identity.current()
        self.exit_code = EX_OK
        self.instance_lock = InstanceLock(Path(environ.get("HUB_LOCK_DIR", DEFAULT_LOCK_DIR)))
        self.hello_timeout_s = preflight.GUARDIAN_HELLO_TIMEOUT_S
        self.step = "starting"
        #: Root mode: stdio upstream MCP servers started under their own uid, for the guardian.
        self.launcher: UpstreamLauncher | None = None

    # set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Users, the instance lock, the secret files and the runtime directory; raises
        Refusal when things must change first. `step` names what was being done, so an
        unexpected OSError says where it came from."""
        self.step = "choosing the service users"
        self.guardian_id, self.sandbox_id = preflight.choose_identities(
            self.environ, self.config_path
        )
        if self.guardian_id.uid != self.sandbox_id.uid:
            self.launcher = UpstreamLauncher(self.config_path, self.environ)
            self.step = "taking the instance lock"
            self.instance_lock.acquire([self.guardian_id, self.sandbox_id], self.layout.root)
        else:
            self.step = "checking what the sandbox could read"
            preflight.check_secrets_beyond_sandbox_reads(
                self.secret_paths(), self.layout, self.config_path
            )
        self.step = "checking the secret files"
        check_secret_files(self.secret_paths(), self.guardian_id, self.sandbox_id)
        self.step = f"preparing the runtime directory {self.layout.root}"
        prepare_runtime(self.layout, self.guardian_id, self.sandbox_id)

    def secret_paths(self) -> list[Path]:
        return preflight.secret_paths(self.env_file, self.environ)

    # process control ----------------------------------------------------------------------
    def spawn(self, child: Child) -> None:
        """Start `child`; the guardian gets a fresh end of the upstream launcher (root mode)."""
        if child.name == "guardian" and self.launcher is not None:
            child.pass_fds = self.launcher.hand_out(child.env)
            try:
                lifecycle.spawn(child)
            finally:
                self.launcher.handed()
            return
        lifecycle.spawn(child)

    def serve_launcher(self) -> None:
        if self.launcher is not None:
            self.launcher.serve()
            self.launcher.reap()

    def programs(self) -> set[int]:
        """The stdio upstream programs started for the guardian (spared by the sweep)."""
        return self.launcher.pids() if self.launcher is not None else set()

    def wait_for_guardian(self, guardian: Child) -> bool:
        deadline = time.monotonic() + self.hello_timeout_s
        while time.monotonic() < deadline:
            if guardian.process is None or guardian.process.poll() is not None:
                return False
            self.serve_launcher()
            if guardian_answers(self.layout.admin_socket):
                logger.info("guardian answers hello on %s", admin_address(self.layout.admin_socket))
                return True
            if self.signals.wait(0.05):
                return False
        logger.error("guardian did not answer hello within %.0f s", self.hello_timeout_s)
        return False

    def reap(self, child: Child) -> None:
        """Notice a dead child and schedule its restart, or give up."""
        process = child.process
        if child.state is not State.RUNNING or process is None:
            return
        status = process.poll()
        if status is None:
            return
        ran = time.monotonic() - child.started_at
        child.process = None
        if child.name == "guardian" and self.launcher is not None:
            self.launcher.close()  # its stdio upstream programs end with it
        self.sweep_leftovers()
        lifecycle.schedule_restart(child, status, ran)

    def stop_all(self) -> None:
        """The sandbox first, and wholly, before the guardian: it stops taking requests and
        closes its link itself, so neither side takes a planned stop for a lost connection."""
        for child in self.children:  # every sandbox process winds down at once, not in turn
            if child.name.startswith("sandbox") and child.process and child.alive():
                child.process.send_signal(signal.SIGTERM)
        for child in reversed([c for c in self.children if c.alive()]):
            lifecycle.stop(child)
            if child.name == "guardian" and self.launcher is not None:
                self.launcher.close()
            self.sweep_leftovers()

    def sweep_leftovers(self) -> None:
        """Kill what a child forked and left behind (reparented to us), sparing the live
        children and what runs below them."""
        live = {c.process.pid for c in self.children if c.process and c.alive()}
        killed = sweep(live | self.programs())
        if killed:
            security_logger.warning(
                "killed %d process(es) left behind by a child (forked and orphaned)", killed
            )

    def orphans(self) -> bool:
        """Whether a process we did not start is our child (a child forked and left it)."""
        return orphans({c.process.pid for c in self.children if c.process} | self.programs())

    # signals ------------------------------------------------------------------------------
    def handle_signals(self) -> bool:
        """Act on queued signals; True when the supervisor should stop."""
        stop = False
        for signum in self.signals.drain():
            if signum in (signal.SIGTERM, signal.SIGINT):
                logger.info("received %s; shutting down", signal.Signals(signum).name)
                stop = True
            elif signum == signal.SIGHUP:
                self.forward_reload()
        return stop

    def forward_reload(self) -> None:
        guardian = self.children[0]
        try:
            check_secret_files(self.secret_paths(), self.guardian_id, self.sandbox_id)
        except Refusal as exc:
            logger.error("SIGHUP: reload refused: %s", exc)
            return
        if guardian.process is not None and guardian.process.poll() is None:
            logger.info("SIGHUP: asking the guardian to reload")
            guardian.process.send_signal(signal.SIGHUP)

    # main ---------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.hello_timeout_s = preflight.check_config(self.config_path, self.environ)
        except (PyfunError, WorkersError) as exc:
            logger.error("cannot start: %s", exc)
            return EX_CONFIG
        try:
            self.prepare()
        except Refusal as exc:
            logger.error("refusing to start: %s", exc)
            return EX_CONFIG
        except (OSError, subprocess.SubprocessError) as exc:
            logger.error("cannot start: %s: %s", self.step, exc)
            return EX_FAILED
        if not become_subreaper():
            logger.warning(
                "PR_SET_CHILD_SUBREAPER refused: a process a child forks and orphans may outlive it"
            )
        self.signals.install()
        self.children = lifecycle.build_children(
            self.environ,
            config_path=self.config_path,
            env_file=self.env_file,
            layout=self.layout,
            guardian_id=self.guardian_id,
            sandbox_id=self.sandbox_id,
        )
        guardian, *sandboxes = self.children
        logger.info(
            "SealGate %s starting (config %s, runtime %s)",
            __version__,
            self.config_path,
            self.layout.root,
        )
        # Both start at once: the sandbox's imports overlap the guardian's boot, and the
        # sandbox serves only once the guardian answers `hello` (sandbox.main).
        self.spawn(guardian)
        for sandbox in sandboxes:  # HUB_SANDBOX_WORKERS of them, each restarted on its own
            lifecycle.spawn(sandbox)
        if not self.wait_for_guardian(guardian):
            self.reap(guardian)
            code = EX_CONFIG if guardian.state is State.FATAL else EX_FAILED
            if self.signals.stop_asked():
                code = EX_OK  # asked to stop while waiting; the guardian's own SIGCHLD is not
            self.stop_all()
            return code
        return self.watch()

    def watch(self) -> int:
        """Restart what dies, sweep what is left behind, until asked to stop or a child
        cannot be kept running; then stop both."""
        while True:
            if self.handle_signals():
                break
            now = time.monotonic()
            for child in self.children:
                self.reap(child)
                if child.state is State.BACKOFF and now >= child.restart_at:
                    self.spawn(child)
            self.serve_launcher()
            if any(child.state is State.FATAL for child in self.children):
                self.exit_code = (
                    EX_CONFIG
                    if any(
                        c.state is State.FATAL and c.failed_starts <= MAX_FAILED_STARTS
                        for c in self.children
                    )
                    else EX_FAILED
                )
                break
            if self.orphans():
                self.sweep_leftovers()
            self.signals.wait(0.2)
        self.stop_all()
        logger.info("supervisor exiting with status %d", self.exit_code)
        return self.exit_code


def main() -> int:
    logging.basicConfig(
        format="%(asctime)s supervisor[%(process)d] %(levelname)s: %(message)s",
        level=logging.INFO,
        stream=sys.stderr,
    )
    if len(sys.argv) > 1:
        print(
            "usage: python supervisor.py   (settings come from HUB_* variables; see README.md)",
            file=sys.stderr,
        )
        return EX_USAGE
    environ = dict(os.environ)  # our copy: the guardian's environment is built from it
    logger.info("supervisor protections: %s", harden_self())
    return Supervisor(environ).run()
