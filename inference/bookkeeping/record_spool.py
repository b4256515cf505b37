"""A run's JSON records kept on disk, not in memory, and read back in CSV row order.

A run over 100,000 rows would otherwise hold 100,000 record dicts (about 0.7 KB each) and,
while writing a JSON file, the whole file as one string. Here each record is appended,
as the exact text it takes inside its JSON file (``writers.record_text``), to one spool
file in the output folder (``.fmc-records[.TAG].spool``, removed when the run closes; the
``.fmc-`` prefix keeps it out of the output audit); memory holds three integers per record
(row index, offset, length). ``ordered`` reads the records back sorted by row index (the
last one wins when a row was stored twice), so a JSON file is streamed out
(``writers.json_chunks``) byte for byte what writing the list at once gives.

Should the spool become unwritable (a full disk), records go on being kept in memory, with
one WARNING: the run loses nothing, it only stops being flat in memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
from array import array
from pathlib import Path
from typing import Iterator

import numpy as np

from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.outputs.writers import record_text

log = logging.getLogger(__name__)

SPOOL_PREFIX = ".fmc-records"


class RecordSpool:
    def __init__(self, folder: Path | None = None, tag: str | None = None):
        """``folder``: where the spool file goes (the output folder); None keeps records in memory."""
        name = f"{SPOOL_PREFIX}.{tag}.spool" if tag else f"{SPOOL_PREFIX}.spool"
        self.path = Path(folder) / name if folder is not None else None
        self._fd: int | None = None
        self._end = 0  # bytes appended so far: each record lies whole at its offset, or is not in the file
        self._broken = self.path is None
        self._where: dict[TaskKind, tuple[array, array, array]] = {
            kind: (array("q"), array("q"), array("q")) for kind in PREDICTION_FILES}  # index, offset, length
        self._memory: dict[TaskKind, dict[int, bytes]] = {kind: {} for kind in PREDICTION_FILES}

    def add(self, kind: TaskKind, index: int, payload: dict) -> None:
        """Keep one row's record (its JSON payload, ``model_dump(mode="json")``)."""
        text = record_text(payload)
        if not self._broken and self._append(text):
            indexes, offsets, lengths = self._where[kind]
            indexes.append(index)
            offsets.append(self._end)
            lengths.append(len(text))
            self._end += len(text)
            return
        self._memory[kind][index] = text

    def _append(self, text: bytes) -> bool:
        """Write ``text`` at the end (unbuffered: a record is on disk whole, or the file is cut back to before it)."""
        try:
            if self._fd is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(self.path, flags, 0o600)
            view, written = memoryview(text), 0
            while written < len(text):
                written += os.pwrite(self._fd, view[written:], self._end + written)
            return True
        except OSError as exc:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._end)
            self._broken = True
            log.warning("records cannot be spooled to %s (%s); keeping them in memory from now on",
                        self.path, exc.strerror or exc)
            return False

    def count(self, kind: TaskKind) -> int:
        return len(self._order(kind)[0])

    def ordered(self, kind: TaskKind) -> tuple[int, int, Iterator[tuple[int, bytes]]]:
        """``(count, bytes, records)``: the kind's records as ``(row index, text)`` in row order, one per row.

        Costs about 17 bytes per record while it runs (the sort order), beside the 24 kept."""
        indexes, slots = self._order(kind)
        _, offsets, lengths = self._where[kind]
        memory = self._memory[kind]
        spooled = slots >= 0
        view = np.frombuffer(lengths, dtype=np.int64) if len(lengths) else np.zeros(0, np.int64)
        total = int(view[slots[spooled]].sum()) + sum(len(memory[int(i)]) for i in indexes[~spooled])
        del view  # a view pins the array: appends would fail while it lives

        def records() -> Iterator[tuple[int, bytes]]:
            for start in range(0, len(indexes), 4096):  # Python ints a few thousand at a time
                for index, slot in zip(indexes[start:start + 4096].tolist(), slots[start:start + 4096].tolist()):
                    yield index, memory[index] if slot < 0 else os.pread(self._fd, lengths[slot], offsets[slot])

        return len(indexes), total, records()

    def _order(self, kind: TaskKind) -> tuple[np.ndarray, np.ndarray]:
        """Row indexes sorted, and where each lives: a slot in the spool (>= 0) or -1 (in memory)."""
        on_disk = self._where[kind][0]
        indexes = np.array(on_disk, dtype=np.int64)  # a copy: the spool's arrays must stay appendable
        if self._memory[kind]:
            extra = np.fromiter(self._memory[kind], dtype=np.int64, count=len(self._memory[kind]))
            indexes = np.concatenate([indexes, extra])
        slots = np.argsort(indexes, kind="stable")  # stable: of a row stored twice, the later comes last
        indexes = indexes[slots]
        slots[slots >= len(on_disk)] = -1  # entries past the spool's are in memory
        if len(indexes) > 1:  # a row stored twice: its last record wins (memory entries come last)
            keep = np.append(indexes[1:] != indexes[:-1], True)
            if not keep.all():
                indexes, slots = indexes[keep], slots[keep]
        return indexes, slots

    def close(self) -> None:
        """Close and remove the spool file (the JSON files hold the records now)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
