"""Many keys in little memory: each kept as a 64-bit hash, found again by binary search.

Used where a run must remember something per row without holding the rows: the journal's
finished rows (``journal.FinishedRows``: hash -> the line to read back) and the files a run
wrote (``output_audit.PathSet``). ``hash64`` makes the hash; callers that cannot afford a
false match compare the full key of what a position points to.
"""

from __future__ import annotations

import hashlib
from array import array

import numpy as np


def hash64(text: str | bytes) -> int:
    """A 64-bit hash (blake2b) of ``text``, as a signed integer (what an ``array("q")`` holds)."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


class HashIndex:
    """Hashes in the order they were added (8 bytes each), sorted once on the first look-up (12 more)."""

    def __init__(self) -> None:
        self._hashes = array("q")
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # hashes sorted, and their positions

    def add(self, hashed: int) -> int:
        """Add one hash; returns its position (0, 1, 2, ... in the order of adding)."""
        self._hashes.append(hashed)
        self._sorted = None
        return len(self._hashes) - 1

    def __len__(self) -> int:
        return len(self._hashes)

    def distinct(self) -> int:
        """How many different hashes were added."""
        hashes = self._lookup()[0]
        return int(np.count_nonzero(np.diff(hashes))) + 1 if len(hashes) else 0

    def positions(self, hashed: int) -> list[int]:
        """The positions of the entries with this hash, the latest first."""
        hashes, order = self._lookup()
        first, last = np.searchsorted(hashes, hashed, "left"), np.searchsorted(hashes, hashed, "right")
        return order[first:last][::-1].tolist()

    def __contains__(self, hashed: object) -> bool:
        return isinstance(hashed, int) and bool(self.positions(hashed))

    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            hashes = np.array(self._hashes, dtype=np.int64)  # a copy: the array stays appendable
            order = np.argsort(hashes, kind="stable").astype(np.int32)  # stable: equal hashes in the order added
            self._sorted = (hashes[order], order)
        return self._sorted
