"""After a batch run: say where the outputs went, and warn about files this run did not write.

The runtime never deletes anything in the output folder. A folder that already held the
results of another run (other CSVs, other masks) would silently mix them with this run's;
``audit_outputs`` makes that visible with one WARNING line: the count of files under the
output folder that this run did not write, and the first few of their paths.

Both sides stay small whatever the number of rows: the run's files are a ``PathSet``
(8 bytes per path, ``inference.bookkeeping.hash_index``), and the folder is walked, not listed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

from inference.bookkeeping.hash_index import HashIndex, hash64

log = logging.getLogger(__name__)

SHOWN = 5
BOOKKEEPING = ".fmc-"  # the run's own lock, journal and record spool (inference.bookkeeping.lock, .journal, .record_spool)


def _path_hash(path: Path | str) -> int:
    return hash64(os.fsencode(os.path.abspath(path)))


class PathSet:
    """A set of file paths kept as 64-bit hashes of their absolute form (``HashIndex``): 8 bytes per path
    (20 once looked up).

    Two paths could share a hash (about one chance in 10^10 for 100,000 paths): the audit would then
    count a stale file as written, which is harmless for a warning and never deletes or skips anything."""

    def __init__(self, paths: Iterable[Path | str] = ()):
        self._index = HashIndex()
        for path in paths:
            self.add(path)

    def add(self, path: Path | str) -> None:
        self._index.add(_path_hash(path))

    def __len__(self) -> int:
        return self._index.distinct()

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and _path_hash(path) in self._index


def audit_outputs(output_dir: Path, written: PathSet, warn_stale: bool = True) -> str:
    """Log the WARNING for stale files (if any, and ``warn_stale``); return the closing INFO line (folder, file count)."""
    output_dir = Path(output_dir)
    root = output_dir.resolve()
    mine = masks = others = stale = 0
    shown: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.startswith(BOOKKEEPING):
                continue
            path = os.path.join(folder, name)
            if path in written:
                mine += 1
                masks += name.lower().endswith(".png")
                others += not name.lower().endswith((".png", ".json"))
            else:
                stale += 1
                if len(shown) < SHOWN:
                    shown.append(os.path.relpath(path, root))
    if stale and warn_stale:
        more = f" and {stale - SHOWN} more" if stale > SHOWN else ""
        log.warning("output folder %s holds %d file(s) this run did not write (left from another run?): %s%s; "
                    "nothing was deleted: use an empty --output folder to keep runs apart",
                    output_dir, stale, ", ".join(shown), more)
    extra = f", {others} other" if others else ""
    return (f"outputs: {mine} files written to {output_dir} ({masks} mask PNGs, {mine - masks - others} JSON files"
            f"{extra})")
