"""What a run produced: records per kind (in CSV order), failed rows, counts; the JSON files.

Failed rows get the documented fallback prediction (``postprocess.fallback``) unless
``strict``; a row whose kind (or, for classification and Regression, size) is unknown,
or a segmentation row without a usable mask path, cannot get one.

Records are kept as the JSON payload they become (``model_dump(mode="json")``), so rows
restored from a journal (``--resume``) write the same bytes as rows predicted now; they
wait in a ``RecordSpool`` (on disk in the output folder), so memory does not grow with the
number of rows, and each JSON file is streamed out of it. Each JSON file is written on
its own: a file that cannot be written (a full disk) is reported with the bytes it
needed, and the others are still written.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from inference.layouts.batch_rows import Row, RowFailure
from contract.kinds import Prediction, Size, fallback, spec_of
from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.errors import describe
from inference.bookkeeping.output_audit import PathSet
from inference.bookkeeping.record_spool import RecordSpool
from inference.outputs.writers import OutputGuard, json_chunks, write_json_records, write_mask

log = logging.getLogger(__name__)


class Settled(NamedTuple):
    """What ``Results.fail`` did with a failed row."""

    settled: bool  # its fallback is in place, or it gets none by design (False: a --resume retries it)
    record: dict | None = None  # its fallback record (JSON kinds)
    fallback: bool = False  # a fallback prediction was written


@dataclass
class Results:
    strict: bool = False
    guard: OutputGuard | None = None  # writes re-checked inside the output folder when given
    spool: RecordSpool = field(default_factory=RecordSpool)  # the JSON records (on disk when given a folder)
    predicted: Counter = field(default_factory=Counter)  # task_id -> rows predicted by the model
    unserved: Counter = field(default_factory=Counter)  # task_id -> rows of official tasks the model does not serve
    failed: int = 0  # failed rows (each logged with its reason)
    fallbacks: int = 0
    masks: PathSet = field(default_factory=PathSet)  # every mask of the run's rows in place (the output audit's)
    #: JSON file name -> the records it holds as this run last wrote it (a checkpoint, or the final write)
    json_on_disk: dict[str, int] = field(default_factory=dict)
    json_failed: dict[str, int] = field(default_factory=dict)  # name -> records it should hold, last write failed

    def add(self, row: Row, prediction: Prediction) -> dict:
        """A JSON-kind prediction of the model (masks are written by the pipeline); returns its payload."""
        payload = prediction.record(row.image_path, row.task_id).model_dump(mode="json")
        self.spool.add(prediction.kind, row.index, payload)
        self.predicted[row.task_id] += 1
        return payload

    def mask_written(self, row: Row, target: Path) -> None:
        self.predicted[row.task_id] += 1
        self.masks.add(target)

    def fail(self, failure: RowFailure, size: Size | None, default_size: Size) -> Settled:
        """Log one clear line for the row (rows of an unserved task: one line per task, at the end); write its
        fallback prediction unless strict."""
        if failure.unserved:
            log.debug("row not served: %s: %s", failure.row.where, failure.reason)
            self.unserved[failure.row.task_id] += 1
        else:
            log.error("row failed: %s: %s", failure.row.where, failure.reason)
            self.failed += 1
        if self.strict:
            return Settled(True)
        kind, count = failure.kind, failure.num_classes
        if kind is None or (count is None and spec_of(kind).fallback_counted):
            log.error("  no fallback prediction for %s: its task kind or size is unknown", failure.row.where)
            return Settled(True)
        if spec_of(kind).writes_mask and failure.mask_target is None:
            log.error("  no fallback mask for %s: no usable mask_path", failure.row.where)
            return Settled(True)
        record = None
        try:
            prediction = fallback(kind, count or 1, size or default_size)
            if spec_of(kind).writes_mask:
                write_mask(failure.mask_target, prediction.mask, self.guard)
                self.masks.add(failure.mask_target)
            else:
                record = prediction.record(failure.row.image_path, failure.row.task_id).model_dump(mode="json")
                self.spool.add(kind, failure.row.index, record)
        except (OSError, ValueError) as exc:
            log.error("  fallback prediction for %s could not be written: %s", failure.row.where, exc)
            return Settled(False)
        except Exception as exc:  # e.g. MemoryError for a huge empty mask: this row only
            log.error("  fallback prediction for %s could not be made: %s", failure.row.where, describe(exc))
            return Settled(False)
        self.fallbacks += 1
        return Settled(True, record, fallback=True)

    def restore(self, row: Row, kind: TaskKind, payload: dict | None, failure: str | None, fallback_written: bool,
                mask: Path | None = None) -> None:
        """A row finished by an earlier, interrupted run (from the journal), counted as then."""
        if mask is not None:
            self.masks.add(mask)
        if payload is not None:
            self.spool.add(kind, row.index, payload)
        if failure is None:
            self.predicted[row.task_id] += 1
            return
        log.error("row failed (before the resume): %s: %s", row.where, failure)
        self.failed += 1
        self.fallbacks += int(fallback_written)

    def write_json(self, output_dir: Path, level: int = logging.ERROR) -> list[str]:
        """The three JSON files, always (an empty list for an absent kind), in CSV row order, each streamed
        from the spool.

        Each file on its own: returns one line per file that could not be written (also logged).
        """
        problems = []
        self.json_failed.clear()
        for kind, name in PREDICTION_FILES.items():
            count = 0
            try:
                count, size, records = self.spool.ordered(kind)
                folder = self.guard.root if self.guard is not None else Path(output_dir)
                write_json_records(folder / name, json_chunks((text for _, text in records), count, size), self.guard)
            except OSError as exc:
                log.log(level, "output file not written: %s", exc)
                problems.append(str(exc))
                self.json_failed[name] = count
                continue
            self.json_on_disk[name] = count
        return problems
