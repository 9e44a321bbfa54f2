"""One live instance per pair of service users.

Every instance's guardian accepts its sandbox by uid, so two instances sharing the pair
would let one's sandbox reach the other's guardian.sock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from supervise.outcomes import Refusal
from supervise.runtime_dirs import open_dir
from supervise.users import Identity

DEFAULT_LOCK_DIR = "/run/sealgate"


class InstanceLock:
    """Refuse a second live instance that would run as the same service users.

    One lock file per user name, held (flock) while the supervisor runs; the kernel drops it
    when the process dies.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: list[int] = []

    def acquire(self, identities: list[Identity], runtime: Path) -> None:
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        dir_fd = open_dir(self.directory, None, str(self.directory))
        try:
            for identity in identities:
                name = f"user-{identity.name}.lock"
                fd = os.open(
                    name,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o644,
                    dir_fd=dir_fd,
                )
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                    os.close(fd)
                    self.release()
                    raise Refusal(
                        f"another SealGate instance ({holder or 'unknown'}) already runs as"
                        f" {identity.name}; instances sharing service users could reach each"
                        " other's guardian. Give this one its own pair, e.g."
                        " HUB_GUARDIAN_USER=hub2-guardian HUB_SANDBOX_USER=hub2-sandbox"
                    ) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}, runtime {runtime}\n".encode(), 0)
                self._fds.append(fd)
        finally:
            os.close(dir_fd)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
