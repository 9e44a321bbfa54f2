"""The configuration in force: read `.pyfun` and the secrets, build a snapshot, swap it whole.

Everything that reads configuration at call time holds a `LiveConfig` and takes
`live.snapshot` once per call, so a reload never shows a call half of a new configuration.
A change of what is active is announced to the connected sandboxes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from guardian.redact import Redactor
from guardian.secrets import load_secrets
from guardian.snapshot import Snapshot
from protocol.pyfun import PyfunConfig, PyfunError, parse

logger = logging.getLogger("sealgate.guardian")

#: Called with what is active after a change (`config.changed` to every sandbox).
Announce = Callable[[dict[str, list[str]]], None]
#: The secret store's current values (name -> value); empty when the store is off.
StoreValues = Callable[[], Mapping[str, str]]


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
    for server in config.mcp_servers.values():  # upstream MCP credentials, redacted alike
        wanted.update(([server.env_key] if server.env_key else []) + list(server.env))
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    secrets = load_secrets(
        wanted=wanted,
        environ=environ,
        env_file=Path(environ.get("HUB_ENV_FILE", ".env")),
        credentials_dir=Path(credentials) if credentials else None,
        store=store,
    )
    return Snapshot.build(config, secrets)


def active_names(snapshot: Snapshot) -> dict[str, list[str]]:
    return {
        "tools": list(snapshot.tools),
        "llm_providers": list(snapshot.llm_providers),
        "search_providers": list(snapshot.search_providers),
    }


class LiveConfig:
    """The snapshot in force, and the two ways it is replaced: a reload of `.pyfun` (and
    secrets), and a change in the secret store."""

    def __init__(
        self,
        *,
        path: Path,
        environ: Mapping[str, str],
        snapshot: Snapshot,
        redactor: Redactor,
        store_values: StoreValues,
        announce: Announce,
    ) -> None:
        self.path = path
        self.redactor = redactor
        self._environ = environ
        self._store_values = store_values
        self._announce = announce
        #: called with the new configuration's sha256 after each reload (the audit log)
        self.on_reload: Callable[[str], None] | None = None
        self.snapshot = snapshot
        redactor.update(snapshot.secrets.values_to_redact())

    def swap(self, snapshot: Snapshot) -> None:
        """Redact the new secrets before any call can use them."""
        self.redactor.update(snapshot.secrets.values_to_redact())
        self.snapshot = snapshot

    def reload(self) -> dict[str, Any]:
        """Re-read configuration and secrets and swap them in whole; on any error raise
        `PyfunError` and keep the old ones."""
        config = read_config(self.path)
        snapshot = build_snapshot(config, self._environ, self._store_values())
        self.swap(snapshot)
        for warning in config.warnings:
            logger.warning("%s", warning)
        logger.info("configuration reloaded (sha256 %s)", config.sha256[:12])
        names = active_names(snapshot)
        self._announce(names)
        if self.on_reload is not None:
            self.on_reload(config.sha256)
        return {"ok": True, "sha256": config.sha256, **names}

    def refresh_secrets(self) -> None:
        """The secret store changed: the same configuration with the new secrets."""
        before = self.snapshot
        snapshot = build_snapshot(before.config, self._environ, self._store_values())
        self.swap(snapshot)
        if active_names(snapshot) != active_names(before):
            self._announce(active_names(snapshot))
