"""Which row writes each mask: two rows naming one mask file would race (the mask that survives would change
from run to run), so the first row in CSV order keeps it and a later one fails, naming both CSV lines.

``MaskClaims`` remembers every mask path claimed so far as a 64-bit hash (``hash_index.hash64`` of the
absolute path) with the claiming row's place (its CSV file's number and its line): 16 bytes per mask,
whatever the number of rows. New claims wait in a small dict and are merged into sorted numpy arrays
when the dict grows past an eighth of them, so a claim costs a binary search and a dict look-up.
Two different paths could share a hash (about one chance in 10^8 for a million masks): the later row
would then fail, with a message naming both rows, which a user can check.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inference.bookkeeping.hash_index import hash64

LINE_BITS = 40  # a row's place: its CSV file's number << LINE_BITS | its line


class MaskClaims:
    def __init__(self) -> None:
        self._keys = np.zeros(0, np.int64)  # sorted hashes
        self._places = np.zeros(0, np.int64)  # the claiming row's place, in the order of _keys
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._keys) + len(self._recent)

    def claim(self, target: Path | str, file_number: int, line: int) -> tuple[int, int] | None:
        """Claim ``target`` for the row at (file number, line); the place of the row that claimed it first,
        or None when it is this row's now."""
        key = hash64(os.fsencode(os.path.abspath(target)))  # (mask targets are absolute and normalized already)
        place = (file_number << LINE_BITS) | line
        earlier = self._recent.get(key)
        if earlier is None and len(self._keys):
            at = int(np.searchsorted(self._keys, key))
            if at < len(self._keys) and self._keys[at] == key:
                earlier = int(self._places[at])
        if earlier is not None:
            return (earlier >> LINE_BITS, earlier & ((1 << LINE_BITS) - 1)) if earlier != place else None
        self._recent[key] = place
        if len(self._recent) > max(1024, len(self._keys) // 8):
            self._merge()
        return None

    def _merge(self) -> None:
        keys = np.fromiter(self._recent.keys(), np.int64, len(self._recent))
        places = np.fromiter(self._recent.values(), np.int64, len(self._recent))
        keys, places = np.concatenate([self._keys, keys]), np.concatenate([self._places, places])
        order = np.argsort(keys, kind="stable")
        self._keys, self._places = keys[order], places[order]
        self._recent.clear()
