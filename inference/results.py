"""What a run produced: records per kind (in CSV order), failed rows, counts; the JSON files.

Failed rows get the documented fallback prediction (``postprocess.fallback``) unless
``strict``; a row whose kind (or, for classification and Regression, size) is unknown,
or a segmentation row without a usable mask path, cannot get one.

Records are kept as the JSON payload they become (``model_dump(mode="json")``), so rows
restored from a journal (``--resume``) write the same bytes as rows predicted now. Each
JSON file is written on its own: a file that cannot be written (a full disk) is reported
with the bytes it needed, and the others are still written.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inference.batch_csv import Row, RowFailure
from contract.kinds import Prediction, Size, fallback
from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from inference.errors import describe
from inference.writers import OutputGuard, write_json_records, write_mask

log = logging.getLogger(__name__)


@dataclass
class Results:
    strict: bool = False
    guard: OutputGuard | None = None  # writes re-checked inside the output folder when given
    records: dict[TaskKind, dict[int, dict]] = field(default_factory=lambda: {k: {} for k in PREDICTION_FILES})
    predicted: Counter = field(default_factory=Counter)  # task_id -> rows predicted by the model
    failed: list[RowFailure] = field(default_factory=list)
    fallbacks: int = 0

    def add(self, row: Row, prediction: Prediction) -> dict:
        """A JSON-kind prediction of the model (masks are written by the pipeline); returns its payload."""
        payload = prediction.record(row.image_path, row.task_id).model_dump(mode="json")
        self.records[prediction.kind][row.index] = payload
        self.predicted[row.task_id] += 1
        return payload

    def mask_written(self, row: Row) -> None:
        self.predicted[row.task_id] += 1

    def fail(self, failure: RowFailure, size: Size | None, default_size: Size) -> bool:
        """Log one clear line for the row; write its fallback prediction unless strict.

        True when the row is settled (its fallback is in place, or it gets none by design);
        False when its fallback could not be written (a later ``--resume`` tries the row again).
        """
        log.error("row failed: %s: %s", failure.row.where, failure.reason)
        self.failed.append(failure)
        if self.strict:
            return True
        kind, count = failure.kind, failure.num_classes
        if kind is None or (count is None and kind in (TaskKind.CLASSIFICATION, TaskKind.REGRESSION)):
            log.error("  no fallback prediction for %s: its task kind or size is unknown", failure.row.where)
            return True
        if kind is TaskKind.SEGMENTATION and failure.mask_target is None:
            log.error("  no fallback mask for %s: no usable mask_path", failure.row.where)
            return True
        try:
            prediction = fallback(kind, count or 1, size or default_size)
            if kind is TaskKind.SEGMENTATION:
                write_mask(failure.mask_target, prediction.mask, self.guard)
            else:
                self.records[kind][failure.row.index] = prediction.record(
                    failure.row.image_path, failure.row.task_id).model_dump(mode="json")
        except (OSError, ValueError) as exc:
            log.error("  fallback prediction for %s could not be written: %s", failure.row.where, exc)
            return False
        except Exception as exc:  # e.g. MemoryError for a huge empty mask: this row only
            log.error("  fallback prediction for %s could not be made: %s", failure.row.where, describe(exc))
            return False
        self.fallbacks += 1
        return True

    def restore(self, row: Row, kind: TaskKind, payload: dict | None, failure: str | None, fallback_written: bool) -> None:
        """A row finished by an earlier, interrupted run (from the journal), counted as then."""
        if payload is not None:
            self.records[kind][row.index] = payload
        if failure is None:
            self.predicted[row.task_id] += 1
            return
        log.error("row failed (before the resume): %s: %s", row.where, failure)
        self.failed.append(RowFailure(row, failure, kind))
        self.fallbacks += int(fallback_written)

    def write_json(self, output_dir: Path, level: int = logging.ERROR) -> list[str]:
        """The three JSON files, always (an empty list for an absent kind), in CSV row order.

        Each file on its own: returns one line per file that could not be written (also logged).
        """
        problems = []
        for kind, name in PREDICTION_FILES.items():
            ordered = [self.records[kind][i] for i in sorted(self.records[kind])]
            try:
                folder = self.guard.root if self.guard is not None else Path(output_dir)
                write_json_records(folder / name, ordered, self.guard)
            except OSError as exc:
                log.log(level, "output file not written: %s", exc)
                problems.append(str(exc))
        return problems

    @property
    def total_predicted(self) -> int:
        return sum(self.predicted.values())
