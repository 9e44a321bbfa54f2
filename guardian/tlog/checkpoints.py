"""Signed checkpoints of the audit log, exported outside the database.

Every `audit_checkpoint_sec` seconds, or sooner once `audit_checkpoint_leaves` leaves were
added, the guardian signs the tree's size and root (a C2SP checkpoint) and exports it: the
file `checkpoint` (the latest note), a line in `checkpoints.jsonl` (every checkpoint with its
frontier, so the next one is checked by reading only the leaves added since), and the log.

A checkpoint is signed only when the leaves since the previous one extend it: the guardian
hashes the new leaves' text onto the previous frontier and compares with the head. A
database rewritten under the guardian is never signed over; the refusal is logged and shown
in `status`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.storage import Storage
from guardian.storage.base import StorageError
from guardian.storage.tlog import leaf_digest
from guardian.tlog import merkle, note
from guardian.tlog.proofs import Proofs
from guardian.tlog.signing_key import SigningKey

logger = logging.getLogger("sealgate.guardian.audit")

LATEST = "checkpoint"
HISTORY = "checkpoints.jsonl"
PUBLIC_KEY = "verifier_key"
PAGE = 5000


class NotExtending(Exception):
    """The database's leaves do not extend the last signed checkpoint."""


@dataclass
class Signed:
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    frontier: list[bytes] = field(default_factory=list)
    note: str = ""
    ts: float = 0.0


def read_history(directory: Path) -> list[dict[str, Any]]:
    path = directory / HISTORY
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class Checkpointer:
    def __init__(
        self,
        storage: Storage,
        key: SigningKey,
        directory: Path,
        *,
        every_s: float,
        every_leaves: int,
    ) -> None:
        self.storage = storage
        self.key = key
        self.directory = directory
        self.every_s = every_s
        self.every_leaves = every_leaves
        self.last = Signed()
        self.refused = ""  # why the last attempt signed nothing, for status
        self.proofs = Proofs(storage)  # inclusion and consistency proofs, O(log n) reads each
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Pick up the last exported checkpoint; publish the verifier key."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.directory / PUBLIC_KEY).write_text(self.key.vkey + "\n", encoding="utf-8")
        history = read_history(self.directory)
        if history:
            last = history[-1]
            self.last = Signed(
                size=int(last["size"]),
                root=base64.b64decode(last["root"]),
                frontier=[bytes.fromhex(h) for h in last["frontier"]],
                note=str(last["note"]),
                ts=float(last["ts"]),
            )

    def stats(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "key": self.key.where,
            "signer": self.key.engine,
            "verifier_key": self.key.vkey,
            "export": str(self.directory),
            "checkpoint_size": self.last.size,
        }
        if self.refused:
            figures["refused"] = self.refused
        return figures

    async def run(self) -> None:
        """The signer loop (run it supervised). While the database is away it says so once
        and tries again at its next turn: the next checkpoint covers what was missed."""
        away = False
        while True:
            await asyncio.sleep(min(self.every_s, 2.0))
            try:
                head = await self.storage.tlog_head()
                grown = head.size - self.last.size
                due = time.time() - self.last.ts >= self.every_s
                if grown > 0 and (grown >= self.every_leaves or due):
                    await self.checkpoint()
            except StorageError as exc:
                if not away:
                    logger.warning("audit checkpoints wait for the database: %s", exc)
                away = True
                continue
            if away:
                logger.info("audit checkpoints: the database is back")
                away = False

    async def checkpoint(self) -> Signed:
        """Sign and export the current head, when it extends the last checkpoint; returns
        the latest signed checkpoint either way."""
        async with self._lock:
            head = await self.storage.tlog_head()
            if head.size <= self.last.size:
                if head.size < self.last.size:
                    self._refuse(
                        f"the tree has {head.size} leaves, the last checkpoint {self.last.size}"
                    )
                return self.last
            try:
                frontier = await self._extend(head.size)
            except NotExtending as exc:
                self._refuse(str(exc))
                return self.last
            top = merkle.frontier_root(frontier)
            if top != head.root:
                self._refuse("the leaves do not hash to the head's root")
                return self.last
            signed = note.sign(
                note.checkpoint_text(self.key.name, head.size, top), self.key.name, self.key.key
            )
            self.last = Signed(head.size, top, frontier, signed, time.time())
            self.refused = ""
            self._export()
            return self.last

    async def _extend(self, size: int) -> list[bytes]:
        frontier = list(self.last.frontier)
        index = self.last.size
        while index < size:
            rows = await self.storage.tlog_leaves(index, min(size, index + PAGE))
            for row in rows:
                if int(row["idx"]) != index:
                    raise NotExtending(f"leaf {index} is missing")
                digest = leaf_digest(str(row["leaf"]))
                if digest.hex() != row["hash"]:
                    raise NotExtending(f"leaf {index} does not match its hash")
                frontier = merkle.append(frontier, index, digest)
                index += 1
            if not rows:
                raise NotExtending(f"leaf {index} is missing")
        return frontier

    def _refuse(self, why: str) -> None:
        if why != self.refused:
            logger.error(
                "audit log: no checkpoint signed: %s (history may have been rewritten)", why
            )
        self.refused = why

    def _export(self) -> None:
        last = self.last
        root = base64.b64encode(last.root).decode()
        latest = self.directory / LATEST
        temporary = latest.with_suffix(".tmp")
        temporary.write_text(last.note, encoding="utf-8")
        os.replace(temporary, latest)
        line = {
            "ts": last.ts,
            "size": last.size,
            "root": root,
            "frontier": [h.hex() for h in last.frontier],
            "note": last.note,
        }
        with (self.directory / HISTORY).open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
        logger.info("audit checkpoint: %s size %d root %s", self.key.name, last.size, root)
