"""Where things live under the runtime directory (`HUB_RUNTIME_DIR`, default `var/`).

    var/guardian/   0700 guardian      its database, admin.sock
    var/sandbox/    0700 sandbox       the sandbox's hub state
    var/run/        2750 guardian, group of the sandbox user
        guardian.sock   0660           the sandbox's only way to the guardian

Only paths are computed here; the supervisor creates the directories and the guardian binds
the sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUNTIME_DIR = "var"


@dataclass(frozen=True, slots=True)
class RuntimeLayout:
    root: Path

    @property
    def guardian_dir(self) -> Path:
        return self.root / "guardian"

    @property
    def sandbox_dir(self) -> Path:
        return self.root / "sandbox"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def guardian_socket(self) -> Path:
        return self.run_dir / "guardian.sock"

    @property
    def admin_socket(self) -> Path:
        return self.guardian_dir / "admin.sock"

    @property
    def guardian_db(self) -> Path:
        return self.guardian_dir / "guardian.db"

    @property
    def hub_state_db(self) -> Path:
        return self.sandbox_dir / "hub_state.db"
