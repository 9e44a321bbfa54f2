"""Inclusion and consistency proofs in O(log n) reads, from cached subtree roots.

A proof needs the roots of the perfect subtrees beside the leaf's path. The roots of the
aligned subtrees of `CHUNK` leaves and more are computed once per guardian process (the
leaves are read once, in pages) and kept in memory (two entries per `CHUNK` leaves); a proof
then reads at most the `CHUNK` leaves around its index and the ragged right edge of the tree.
A caller asking for a receipt's proof costs the guardian a few small reads, never a pass
over the whole log. The stored hashes are used as they are: a proof is checked against the
signed root, so a stored hash that lies makes a proof that fails, never a false one.
"""

from __future__ import annotations

import asyncio

from guardian.storage import Storage
from guardian.tlog import merkle

CHUNK = 256
PAGE = 8192


class MissingLeaves(Exception):
    """The table does not hold every leaf of the range (run `audit verify`)."""


class Proofs:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.roots: dict[tuple[int, int], bytes] = {}  # (start, size) -> root, size >= CHUNK
        self.covered = 0  # leaves below this are in whole cached chunks
        self._lock = asyncio.Lock()

    async def _hashes(self, start: int, end: int) -> list[bytes]:
        rows = await self.storage.tlog_leaves(start, end)
        if [int(row["idx"]) for row in rows] != list(range(start, end)):
            raise MissingLeaves(f"leaves {start} to {end - 1} are not all in the table")
        return [bytes.fromhex(str(row["hash"])) for row in rows]

    async def _cover(self, size: int) -> None:
        """Cache the roots of every whole chunk below `size`, and of their aligned unions."""
        async with self._lock:
            while self.covered + CHUNK <= size:
                end = min(size - (size - self.covered) % CHUNK, self.covered + PAGE)
                hashes = await self._hashes(self.covered, end)
                for offset in range(0, len(hashes), CHUNK):
                    chunk = hashes[offset : offset + CHUNK]
                    self.roots[(self.covered, CHUNK)] = merkle.root(chunk)
                    self.covered += CHUNK
                    width = CHUNK * 2
                    while self.covered % width == 0:
                        first = self.covered - width
                        half = width // 2
                        self.roots[(first, width)] = merkle.node_hash(
                            self.roots[(first, half)], self.roots[(first + half, half)]
                        )
                        width *= 2
                await asyncio.sleep(0)  # a long first pass leaves the loop to other calls

    async def _root(self, start: int, size: int) -> bytes:
        """MTH of the leaves [start, start + size)."""
        cached = self.roots.get((start, size))
        if cached is not None:
            return cached
        if size <= CHUNK:
            return merkle.root(await self._hashes(start, start + size))
        k = _split(size)
        return merkle.node_hash(await self._root(start, k), await self._root(start + k, size - k))

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 PATH(index, D[size])."""
        if not 0 <= index < size:
            raise IndexError(f"leaf {index} is not in a tree of {size}")
        await self._cover(size)
        return await self._path(index, 0, size)

    async def _path(self, index: int, start: int, size: int) -> list[bytes]:
        if size == 1:
            return []
        k = _split(size)
        if index < k:
            return [*await self._path(index, start, k), await self._root(start + k, size - k)]
        return [*await self._path(index - k, start + k, size - k), await self._root(start, k)]

    async def consistency(self, old_size: int, size: int) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[size])."""
        if not 0 < old_size <= size:
            raise IndexError(f"no consistency proof from size {old_size} to {size}")
        await self._cover(size)
        return await self._subproof(old_size, 0, size, True)

    async def _subproof(self, m: int, start: int, size: int, whole: bool) -> list[bytes]:
        if m == size:
            return [] if whole else [await self._root(start, size)]
        k = _split(size)
        if m <= k:
            return [
                *await self._subproof(m, start, k, whole),
                await self._root(start + k, size - k),
            ]
        return [
            *await self._subproof(m - k, start + k, size - k, False),
            await self._root(start, k),
        ]


def _split(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k
