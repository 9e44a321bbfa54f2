"""What is checked before anything starts: the configuration and who runs what.

A configuration that does not parse stops the supervisor with EX_CONFIG before any child
starts. Run as root, the guardian and the sandbox get two service users; with one uid (not
root, or HUB_SINGLE_UID=1) Landlock alone keeps secrets from the sandbox, so no secret may lie
beneath a path the sandbox may read.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from protocol.pyfun import PyfunError, parse, with_env_overrides
from protocol.runtime import RuntimeLayout
from protocol.sandboxpaths import exposing
from protocol.workers import WORKERS_VAR, WorkersError, sandbox_workers
from supervise.outcomes import Refusal
from supervise.users import Identity, check_code_readable, ensure_user, may_access

GUARDIAN_HELLO_TIMEOUT_S = 30.0

logger = logging.getLogger("sealgate.supervisor")


def check_config(config_path: Path, environ: Mapping[str, str]) -> float:
    """Parse the configuration (logging its warnings); returns how long to wait for the
    guardian's hello. Raises PyfunError when it cannot boot."""
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PyfunError(str(config_path), 0, "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PyfunError(str(config_path), 0, f"cannot read it: {exc}") from None
    config = with_env_overrides(parse(text, str(config_path)), environ)
    for warning in config.warnings:
        logger.warning("%s", warning)
    check_workers(config.hub.port, config.hub_limits.max_sandbox_connections, environ)
    # the guardian may spend db_connect_wait_s reaching its database before it answers
    return GUARDIAN_HELLO_TIMEOUT_S + config.hub.db_connect_wait_s


def check_workers(port: int, max_links: int, environ: Mapping[str, str]) -> int:
    """The number of sandbox processes; raises WorkersError when it cannot work: each
    worker holds one link to the guardian, which refuses links past
    `[HUB_LIMITS] max_sandbox_connections`, and with port 0 each would get a port of its own."""
    workers = sandbox_workers(environ)
    if workers > max_links:
        raise WorkersError(
            f"{WORKERS_VAR}={workers}: each sandbox process holds a link to the guardian, and"
            f" [HUB_LIMITS] max_sandbox_connections is {max_links}; raise it to at least"
            f" {workers}"
        )
    if workers > 1 and port == 0:
        raise WorkersError(
            f"{WORKERS_VAR}={workers} needs a fixed port (HUB_PORT=0 would give each process"
            " a port of its own)"
        )
    return workers


def choose_identities(environ: Mapping[str, str], config_path: Path) -> tuple[Identity, Identity]:
    """(the guardian's user, the sandbox's user): two service users when run as root,
    otherwise both the current user."""
    current = Identity.current()
    single = environ.get("HUB_SINGLE_UID", "").strip().lower() in ("1", "true", "yes")
    if os.geteuid() != 0:
        logger.warning(
            "running as %s (not root): the guardian and the sandbox share uid %d, so the"
            " sandbox is not isolated from the guardian's files; run as root (or with"
            " systemd units) for two-uid isolation",
            current.name,
            current.uid,
        )
        return current, current
    if single:
        logger.warning(
            "HUB_SINGLE_UID=1: the guardian and the sandbox both run as root; this is for"
            " development only"
        )
        return current, current
    guardian = ensure_user(environ.get("HUB_GUARDIAN_USER", "hub-guardian"))
    sandbox = ensure_user(environ.get("HUB_SANDBOX_USER", "hub-sandbox"))
    if guardian.uid == sandbox.uid:
        raise Refusal("HUB_GUARDIAN_USER and HUB_SANDBOX_USER name the same user")
    for identity in (guardian, sandbox):
        check_code_readable(identity, sys.executable)
    if not may_access(config_path, sandbox, 0o4) or not may_access(config_path, guardian, 0o4):
        raise Refusal(
            f"{config_path} must be readable by both {guardian.name} and"
            f" {sandbox.name} (it holds no secret): chmod 0644 {config_path}"
        )
    logger.info(
        "guardian runs as %s (uid %d), sandbox as %s (uid %d)",
        guardian.name,
        guardian.uid,
        sandbox.name,
        sandbox.uid,
    )
    return guardian, sandbox


def secret_paths(env_file: Path, environ: Mapping[str, str]) -> list[Path]:
    """The env file, and systemd's credentials directory when there is one."""
    paths = [env_file]
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        paths.append(Path(credentials))
    return paths


def check_secrets_beyond_sandbox_reads(
    secrets: list[Path], layout: RuntimeLayout, config_path: Path
) -> None:
    """One uid: Landlock alone keeps secrets from the sandbox, so none may lie beneath a
    path its rules let it read."""
    for secret in (*secrets, layout.guardian_dir):
        allowed = exposing(secret, layout, config_path)
        if allowed is not None:
            raise Refusal(
                f"{secret} lies beneath {allowed}, which the sandbox may read (one uid:"
                " Landlock is all that keeps secrets from it); move it elsewhere, e.g."
                " HUB_ENV_FILE=/run/secrets/sealgate.env"
            )
