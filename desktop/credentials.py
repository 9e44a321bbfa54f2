"""Where the token or session lives: the OS keyring, else a 0600 file, announced as such.

The password is never stored: signing in trades it for a session at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import keyring.errors
from keyring.backends import fail

from desktop.hub import Credential
from desktop.store import config_dir, write_private

SERVICE = "SealGate Desktop"


class CredentialVault:
    """One credential per hub URL."""

    def __init__(self, root: Path | None = None) -> None:
        self.file = (root or config_dir()) / "credentials.json"

    @property
    def uses_keyring(self) -> bool:
        """False where no keyring exists (a headless Linux box): the file is used instead."""
        backend = keyring.get_keyring()
        return not isinstance(backend, fail.Keyring) and backend.priority > 0

    def where(self) -> str:
        """A sentence for the UI saying where the credential is kept."""
        if self.uses_keyring:
            return (
                f"Credential kept in the system keyring ({type(keyring.get_keyring()).__name__})."
            )
        return (
            f"No system keyring found: the credential is kept in {self.file} "
            "(readable by you only, mode 0600)."
        )

    def _file_values(self) -> dict[str, dict[str, str]]:
        try:
            values = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return values if isinstance(values, dict) else {}

    def save(self, hub_url: str, credential: Credential) -> None:
        value = json.dumps({"kind": credential.kind, "value": credential.value})
        if self.uses_keyring:
            try:
                keyring.set_password(SERVICE, hub_url, value)
                return
            except keyring.errors.KeyringError:
                pass
        values = self._file_values()
        values[hub_url] = {"kind": credential.kind, "value": credential.value}
        write_private(self.file, json.dumps(values))

    def load(self, hub_url: str) -> Credential | None:
        raw: dict[str, str] | None = None
        if self.uses_keyring:
            try:
                stored = keyring.get_password(SERVICE, hub_url)
            except keyring.errors.KeyringError:
                stored = None
            if stored:
                try:
                    raw = json.loads(stored)
                except ValueError:
                    raw = None
        if raw is None:
            raw = self._file_values().get(hub_url)
        if not isinstance(raw, dict) or raw.get("kind") not in ("token", "session"):
            return None
        return Credential(kind=raw["kind"], value=str(raw.get("value", "")))

    def forget(self, hub_url: str) -> None:
        if self.uses_keyring:
            try:
                keyring.delete_password(SERVICE, hub_url)
            except keyring.errors.KeyringError:
                pass
        values = self._file_values()
        if values.pop(hub_url, None) is not None:
            write_private(self.file, json.dumps(values))
