"""Where things live under the runtime directory (`HUB_RUNTIME_DIR`, default `var/`).

    var/guardian/   0700 guardian      its database, admin.sock (one uid: admin.addr, the
                                       random abstract name it listens on, with its pid)
    var/sandbox/    0700 sandbox       the sandbox's hub state
    var/run/        2750 guardian, group of the sandbox user
        guardian.sock   0660           the sandbox's only way to the guardian

With `HUB_DATA_DIR` set, the two databases live under it instead (`guardian/guardian.db`,
`sandbox/hub_state.db`, same owners and modes) while the sockets stay under the runtime
directory: a Hugging Face Space's persistent `/data` keeps the databases across restarts,
and a network volume is no place for a Unix socket.

Only paths are computed here; the supervisor creates the directories and the guardian binds
the sockets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUNTIME_DIR = "var"


@dataclass(frozen=True, slots=True)
class RuntimeLayout:
    root: Path
    #: Where the databases go when not under `root` (`HUB_DATA_DIR`).
    data_root: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RuntimeLayout:
        """`HUB_RUNTIME_DIR` (default `var/`) and `HUB_DATA_DIR` (default: the same)."""
        root = Path(environ.get("HUB_RUNTIME_DIR", DEFAULT_RUNTIME_DIR)).resolve()
        data = environ.get("HUB_DATA_DIR", "").strip()
        data_root = Path(data).resolve() if data else None
        return cls(root, None if data_root == root else data_root)

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
    def guardian_data_dir(self) -> Path:
        return self.data_root / "guardian" if self.data_root else self.guardian_dir

    @property
    def sandbox_data_dir(self) -> Path:
        return self.data_root / "sandbox" if self.data_root else self.sandbox_dir

    @property
    def guardian_db(self) -> Path:
        return self.guardian_data_dir / "guardian.db"

    @property
    def hub_state_db(self) -> Path:
        return self.sandbox_data_dir / "hub_state.db"
