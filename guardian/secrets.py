"""Secret values by name, loaded from systemd credentials, the environment and an env file.

Lookup order for a name: `$CREDENTIALS_DIRECTORY/<name>`, then the environment, then the env
file (`HUB_ENV_FILE`, default `.env`; read with python-dotenv into this object only, never
into `os.environ`). The object remembers where each value came from, so operators can see it,
and hands every value to the redactor. Its `repr` never shows a value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

logger = logging.getLogger("sealgate.guardian.secrets")

STORE = "secret store"
CREDENTIALS = "credentials"
ENVIRONMENT = "environment"
ENV_FILE = "env file"

#: Guardian secrets that are not provider keys.
WELL_KNOWN = ("SEALGATE_BOOTSTRAP_TOKEN", "SEALGATE_MASTER_KEY", "DATABASE_URL", "DB_QUERY_URL")
#: Environment variables whose names look secret are redacted even if no provider names them.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|_URL$)", re.IGNORECASE)
_MAX_CREDENTIAL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Secret:
    value: str
    origin: str  # STORE, CREDENTIALS, ENVIRONMENT or ENV_FILE

    def __repr__(self) -> str:
        return f"Secret(<hidden>, origin={self.origin!r})"


class Secrets:
    """Read-only secret values by name."""

    def __init__(self, values: Mapping[str, Secret], redact_also: Iterable[str] = ()) -> None:
        self._values = dict(values)
        self._redact_also = frozenset(redact_also)

    def get(self, name: str) -> str | None:
        secret = self._values.get(name)
        return secret.value if secret else None

    def origin(self, name: str) -> str | None:
        secret = self._values.get(name)
        return secret.origin if secret else None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return sorted(self._values)

    def values_to_redact(self) -> frozenset[str]:
        return frozenset(s.value for s in self._values.values()) | self._redact_also

    def __repr__(self) -> str:
        return f"Secrets(names={self.names()!r})"


def _read_credentials(directory: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not directory.exists():
        return values
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        logger.warning("cannot list CREDENTIALS_DIRECTORY %s: %s", directory, exc.strerror)
        return values
    for entry in entries:
        try:
            if not entry.is_file() or entry.stat().st_size > _MAX_CREDENTIAL_BYTES:
                continue
            values[entry.name] = entry.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("cannot read credential %s: %s", entry.name, type(exc).__name__)
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """The env file's non-empty values (python-dotenv, no interpolation); {} if absent."""
    if not path.exists():
        return {}
    try:
        raw = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("cannot read env file %s: %s", path, type(exc).__name__)
        return {}
    return {name: value for name, value in raw.items() if value}


def load_secrets(
    *,
    wanted: Iterable[str],
    environ: Mapping[str, str],
    env_file: Path | None,
    credentials_dir: Path | None,
    store: Mapping[str, str] | None = None,
) -> Secrets:
    """Collect the secrets named in `wanted` (and the well-known ones) from every source:
    the secret store first, then credentials, the environment, the env file."""
    store = store or {}
    credentials = _read_credentials(credentials_dir) if credentials_dir else {}
    from_file = read_env_file(env_file) if env_file else {}
    names = set(wanted) | set(WELL_KNOWN)
    found: dict[str, Secret] = {}
    for name in sorted(names):
        if store.get(name):
            found[name] = Secret(store[name], STORE)
        elif credentials.get(name):
            found[name] = Secret(credentials[name], CREDENTIALS)
        elif environ.get(name):
            found[name] = Secret(environ[name], ENVIRONMENT)
        elif from_file.get(name):
            found[name] = Secret(from_file[name], ENV_FILE)
    # Everything in the env file and the credentials directory is secret by where it lives;
    # environment variables only by their names.
    redact_also = set(credentials.values()) | set(from_file.values()) | set(store.values())
    redact_also |= {value for key, value in environ.items() if value and _SECRET_NAME.search(key)}
    redact_also |= otlp_header_values(environ)
    return Secrets(found, redact_also)


#: The OTLP exporter's headers (`name=value,...`): often a tracing backend's API key.
_OTLP_HEADERS = re.compile(r"^OTEL_EXPORTER_OTLP_(TRACES_|METRICS_|LOGS_)?HEADERS$")


def otlp_header_values(environ: Mapping[str, str]) -> set[str]:
    """The OTLP headers variables' values, whole and each header's value, to be redacted."""
    values: set[str] = set()
    for key, value in environ.items():
        if not value or not _OTLP_HEADERS.match(key):
            continue
        values.add(value)
        for pair in value.split(","):
            _, _, header = pair.partition("=")
            if header.strip():
                values.add(header.strip())
    return values
