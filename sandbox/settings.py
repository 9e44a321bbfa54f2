"""The sandbox's settings: its allowlisted environment plus the `.pyfun` file.

The supervisor starts the sandbox with an environment built from `ALLOWED_ENV` and nothing
else; this module reads only those names, so a secret that somehow reached the environment
would still not be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from protocol.environment import SANDBOX_ENV_ALLOWLIST
from protocol.pyfun import PyfunConfig, PyfunError, parse, with_env_overrides
from protocol.runtime import RuntimeLayout

#: Every environment variable the sandbox may receive (the list lives in protocol/).
ALLOWED_ENV = SANDBOX_ENV_ALLOWLIST


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSettings:
    config: PyfunConfig
    layout: RuntimeLayout
    log_level: str
    #: A Hugging Face Space's host name (`SPACE_HOST`): served as Host and https Origin.
    space_host: str | None = None

    @property
    def host(self) -> str:
        return self.config.hub.host

    @property
    def port(self) -> int:
        return self.config.hub.port


def load_settings(environ: Mapping[str, str]) -> SandboxSettings:
    """Raises `PyfunError` when the configuration cannot be used."""
    path = Path(environ.get("HUB_CONFIG", ".pyfun"))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PyfunError(str(path), 0, f"cannot read the configuration: {exc}") from None
    config = with_env_overrides(parse(text, str(path)), environ)
    return SandboxSettings(
        config=config,
        layout=RuntimeLayout.from_environ(environ),
        log_level=environ.get("HUB_LOG_LEVEL", config.hub.log_level),
        space_host=environ.get("SPACE_HOST", "").strip().lower() or None,
    )
