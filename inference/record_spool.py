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

import logging
import os
from array import array
from pathlib import Path
from typing import Iterator

import numpy as np

from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.writers import record_text

log = logging.getLogger(__name__)

SPOOL_PREFIX = ".fmc-records"


class RecordSpool:
    def __init__(self, folder: Path | None = None, tag: str | None = None):
        """``folder``: where the spool file goes (the output folder); None keeps records in memory."""
        name = f"{SPOOL_PREFIX}.{tag}.spool" if tag else f"{SPOOL_PREFIX}.spool"
        self.path = Path(folder) / name if folder is not None else None
        self._writer = None
        self._reader: int | None = None
        self._end = 0  # bytes appended so far
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
        try:
            if self._writer is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
                fd = os.open(self.path, flags, 0o600)
                self._writer = os.fdopen(fd, "wb", buffering=1 << 16)
                self._reader = os.dup(fd)
            self._writer.write(text)
            return True
        except OSError as exc:
            self._broken = True
            log.warning("records cannot be spooled to %s (%s); keeping them in memory from now on",
                        self.path, exc.strerror or exc)
            return False

    def count(self, kind: TaskKind) -> int:
        return len(self._order(kind)[0])

    def ordered(self, kind: TaskKind) -> tuple[int, int, Iterator[tuple[int, bytes]]]:
        """``(count, bytes, records)``: the kind's records as ``(row index, text)`` in row order, one per row."""
        indexes, source = self._order(kind)
        offsets, lengths = (np.array(a, dtype=np.int64) for a in self._where[kind][1:])  # copies: appends go on
        memory = self._memory[kind]
        spooled = source[source >= 0]
        total = int(lengths[spooled].sum()) + sum(len(memory[int(i)]) for i in indexes[source < 0])
        if self._writer is not None:
            try:
                self._writer.flush()
            except OSError as exc:
                raise OSError(exc.errno, f"the record spool {self.path} cannot be read back: {exc.strerror}") from exc

        def records() -> Iterator[tuple[int, bytes]]:
            for index, slot in zip(indexes.tolist(), source.tolist()):
                if slot < 0:
                    yield index, memory[index]
                else:
                    yield index, os.pread(self._reader, int(lengths[slot]), int(offsets[slot]))

        return len(indexes), total, records()

    def _order(self, kind: TaskKind) -> tuple[np.ndarray, np.ndarray]:
        """Row indexes sorted, and where each lives: a slot in the spool (>= 0) or -1 (in memory)."""
        spooled = self._where[kind][0]
        on_disk = np.array(spooled, dtype=np.int64)
        in_memory = np.fromiter(self._memory[kind], dtype=np.int64, count=len(self._memory[kind]))
        indexes = np.concatenate([on_disk, in_memory])
        source = np.concatenate([np.arange(len(on_disk), dtype=np.int64), np.full(len(in_memory), -1, np.int64)])
        order = np.argsort(indexes, kind="stable")
        indexes, source = indexes[order], source[order]
        if len(indexes) > 1:  # a row stored twice: its last record wins (memory entries come last)
            keep = np.append(indexes[1:] != indexes[:-1], True)
            indexes, source = indexes[keep], source[keep]
        return indexes, source

    def close(self) -> None:
        """Close and remove the spool file (the JSON files hold the records now)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass  # the spool is scratch: what it failed to take was reported when it was written
            os.close(self._reader)
            self._writer = self._reader = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
