"""What a run produced: records per kind (in CSV order), failed rows, counts; the JSON files.

Failed rows get the documented fallback prediction (``postprocess.fallback``) unless
``strict``; a row whose kind (or, for classification and Regression, size) is unknown,
or a segmentation row without a usable mask path, cannot get one.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inference.batch_csv import Row, RowFailure
from contract.kinds import Prediction, Size, fallback
from contract.kinds import PREDICTION_FILES, Record
from contract.tasks import TaskKind
from inference.writers import write_json_records, write_mask

log = logging.getLogger(__name__)


@dataclass
class Results:
    strict: bool = False
    records: dict[TaskKind, dict[int, Record]] = field(default_factory=lambda: {k: {} for k in PREDICTION_FILES})
    predicted: Counter = field(default_factory=Counter)  # task_id -> rows predicted by the model
    failed: list[RowFailure] = field(default_factory=list)
    fallbacks: int = 0

    def add(self, row: Row, prediction: Prediction) -> None:
        """A JSON-kind prediction of the model (masks are written by the pipeline)."""
        self.records[prediction.kind][row.index] = prediction.record(row.image_path, row.task_id)
        self.predicted[row.task_id] += 1

    def mask_written(self, row: Row) -> None:
        self.predicted[row.task_id] += 1

    def fail(self, failure: RowFailure, size: Size | None, default_size: Size) -> None:
        """Log one clear line for the row; write its fallback prediction unless strict."""
        log.error("row failed: %s: %s", failure.row.where, failure.reason)
        self.failed.append(failure)
        if self.strict:
            return
        kind, count = failure.kind, failure.num_classes
        if kind is None or (count is None and kind in (TaskKind.CLASSIFICATION, TaskKind.REGRESSION)):
            log.error("  no fallback prediction for %s: its task kind or size is unknown", failure.row.where)
            return
        if kind is TaskKind.SEGMENTATION and failure.mask_target is None:
            log.error("  no fallback mask for %s: no usable mask_path", failure.row.where)
            return
        prediction = fallback(kind, count or 1, size or default_size)
        try:
            if kind is TaskKind.SEGMENTATION:
                write_mask(failure.mask_target, prediction.mask)
            else:
                self.records[kind][failure.row.index] = prediction.record(failure.row.image_path, failure.row.task_id)
        except (OSError, ValueError) as exc:
            log.error("  fallback prediction for %s could not be written: %s", failure.row.where, exc)
            return
        self.fallbacks += 1

    def write_json(self, output_dir: Path) -> list[Path]:
        """The three JSON files, always (an empty list for an absent kind), in CSV row order."""
        written = []
        for kind, name in PREDICTION_FILES.items():
            ordered = [self.records[kind][i] for i in sorted(self.records[kind])]
            written.append(write_json_records(Path(output_dir) / name, ordered))
        return written

    @property
    def total_predicted(self) -> int:
        return sum(self.predicted.values())
