"""The batch layout's rows turned into the jobs the model must predict (``JobStream``), the others settled.

On the way every row is checked against the model (``batch_rows.check_row``); a row that cannot be
predicted fails with its fallback, a row finished by an earlier run (``--resume``) is restored from
the journal when its image is unchanged, and two rows naming one mask fail the later one
(``outputs.claims.MaskClaims``). A shard sees every row, so that a mask claimed by another shard's
row is not written twice, and yields only its own.

Each job carries its image's fingerprint (``image_stamp``: size and modification time, taken before
the image is read), which the journal keeps; ``--resume`` predicts a row again when its image's
fingerprint changed since (a content hash would cost about as much as decoding the image:
docs/failures.md has the measurement).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from contract.imaging import image_size
from contract.manifest import ModelFolder
from inference.bookkeeping.journal import FinishedRows, Journal, row_key
from inference.layouts.batch_rows import InputRows, Job, Row, RowFailure, check_row
from inference.outputs.claims import MaskClaims
from inference.outputs.results import Results
from inference.outputs.writers import OutputGuard

log = logging.getLogger(__name__)

Stamp = tuple[int, int]  # (size in bytes, modification time in ns)


def image_stamp(path: Path) -> Stamp | None:
    """The image's fingerprint for ``--resume``: its size and modification time (None: it cannot be stat'ed)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _as_stamp(value: object) -> Stamp | None:
    return (int(value[0]), int(value[1])) if isinstance(value, list) and len(value) == 2 else None


class JobStream:
    """The rows the model must predict, one at a time, as ``Job``s; the others are settled on the way:
    failed (with their fallback), or finished by an earlier run (``journal``, ``--resume``) and restored.

    ``rows``: the whole input; ``mine``: which rows are this run's (a shard's; default: all). Iterated
    once. ``settled`` counts the rows settled so, ``changed`` the journaled rows predicted again because
    their image changed; ``on_settled`` is told of each settled row (the pipeline's progress)."""

    def __init__(self, rows: InputRows, folder: ModelFolder, guard: OutputGuard, results: Results,
                 journal: Journal | None = None, mine: Callable[[Row], bool] | None = None):
        self.rows, self.folder, self.guard, self.results, self.journal = rows, folder, guard, results, journal
        self.mine = mine
        self.settled = self.changed = 0
        self.on_settled: Callable[[int], None] = lambda count: None
        self.claims = MaskClaims()
        self._files = {path.name: number for number, path in enumerate(rows.files)}

    def __iter__(self) -> Iterator[Job]:
        manifest = self.folder.manifest
        default_size = tuple(manifest.model.preprocessing.input_size)
        done = self.journal.done if self.journal is not None else FinishedRows()
        for row in self.rows:
            checked = self._claimed(row, check_row(row, manifest, self.guard))
            if self.mine is not None and not self.mine(row):
                continue
            if isinstance(checked, RowFailure):
                self.results.fail(checked, image_size(row.image_file), default_size)
            else:
                checked = replace(checked, stamp=image_stamp(row.image_file))  # before the image is read
                entry = done.get(row_key(row)) if len(done) else None
                if entry is None or (checked.mask_target is not None and not checked.mask_target.is_file()):
                    yield checked  # not finished before, or its mask was deleted since: made again
                    continue
                if _as_stamp(entry.get("image")) != checked.stamp:
                    self.changed += 1
                    log.info("--resume: %s: the image changed since it was predicted; predicting it again", row.where)
                    yield checked
                    continue
                self.results.restore(row, checked.task.kind, entry["record"], entry["failed"], entry["fallback"],
                                     mask=checked.mask_target)
            self.settled += 1
            self.on_settled(1)

    def _claimed(self, row: Row, checked: Job | RowFailure) -> Job | RowFailure:
        """``checked``, or a failure when an earlier row claimed the same mask file."""
        if checked.mask_target is None:
            return checked
        earlier = self.claims.claim(checked.mask_target, self._files.get(row.csv_name, -1), row.line)
        if earlier is None:
            return checked
        names = list(self._files)
        where = f"{names[earlier[0]] if 0 <= earlier[0] < len(names) else '?'} line {earlier[1]}"
        kind, count = (checked.task.kind, checked.task.num_classes) if isinstance(checked, Job) else \
            (checked.kind, checked.num_classes)
        return RowFailure(row, f"mask_path {row.mask_path!r} names the same file as {where}, whose mask it is "
                               f"({checked.mask_target.relative_to(self.guard.root)}); give each row a mask_path of "
                               "its own", kind, count)


def check_rows(rows: InputRows, folder: ModelFolder, guard: OutputGuard, results: Results,
               journal: Journal | None = None) -> list[Job]:
    """``JobStream`` as a list (for callers that need every job at once, e.g. the Ray driver)."""
    return list(JobStream(rows, folder, guard, results, journal))
