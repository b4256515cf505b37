"""Reading and validating a prediction folder (docs/CHALLENGE.md, "Output").

Records are matched to label rows on the exact (image_path, task_id) pair. Every
accessor either returns a usable prediction or raises ``BadPrediction`` with the
reason, which the scorer records per row and scores as the worst case.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from contract.csv_layout import output_mask_path  # noqa: F401  (re-exported: review, tests)
from contract.kinds import PREDICTION_FILES
from contract.tasks import TaskKind
from evaluation.labels import LabelRow

log = logging.getLogger(__name__)

JSON_FILES = PREDICTION_FILES  # the runtime's files (contract.kinds)


class BadPrediction(ValueError):
    """A prediction that is missing or malformed; the message is the per-row reason."""


class _RecordFile:
    """One predictions JSON file indexed by (image_path, task_id); ``problem`` if unusable."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.problem: Optional[str] = None
        self.duplicates = 0
        if not path.is_file():
            self.problem = f"{path.name} is missing"
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.problem = f"{path.name} is not valid JSON ({exc})"
            return
        if not isinstance(data, list):
            self.problem = f"{path.name} is not a JSON list of records"
            return
        for item in data:
            if not isinstance(item, dict):
                continue
            key = (item.get("image_path"), item.get("task_id"))
            if not all(isinstance(k, str) for k in key):
                continue
            if key in self.records:
                self.duplicates += 1
                continue
            self.records[key] = item
        if self.duplicates:
            log.warning("%s: %d duplicate records ignored (the first one counts)", path.name, self.duplicates)

    def record(self, row: LabelRow) -> dict[str, Any]:
        if self.problem:
            raise BadPrediction(self.problem)
        try:
            return self.records[row.key]
        except KeyError:
            raise BadPrediction(f"no record in {self.path.name}") from None


def _numbers(value: Any, length: int, field: str) -> np.ndarray:
    if not isinstance(value, list):
        raise BadPrediction(f"{field} is not a list")
    if len(value) != length:
        raise BadPrediction(f"{field} has {len(value)} values, expected {length}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise BadPrediction(f"{field} holds non-numbers")
    if not all(math.isfinite(v) for v in value):
        raise BadPrediction(f"{field} holds NaN or infinity")
    return np.asarray(value, dtype=float)


class PredictionFolder:
    """Accessors for the predictions of each kind in PRED_DIR."""

    def __init__(self, predictions_dir: Path, kinds: set[TaskKind]):
        self.root = Path(predictions_dir)
        self.files = {kind: _RecordFile(self.root / name) for kind, name in JSON_FILES.items() if kind in kinds}

    def file_problems(self) -> list[str]:
        return [f.problem for f in self.files.values() if f.problem]

    def unmatched(self, rows: list[LabelRow], task_ids: set[str]) -> int:
        """Records of the scored tasks that match no label row (e.g. a rewritten image_path)."""
        keys = {r.key for r in rows}
        return sum(
            1
            for f in self.files.values()
            for key in f.records
            if key[1] in task_ids and key not in keys
        )

    def classification(self, row: LabelRow) -> tuple[int, np.ndarray]:
        rec = self.files[row.kind].record(row)
        probs = _numbers(rec.get("predicted_probs"), row.num_classes, "predicted_probs")
        cls = rec.get("predicted_class")
        if not isinstance(cls, int) or isinstance(cls, bool) or not 0 <= cls < row.num_classes:
            raise BadPrediction(f"predicted_class {cls!r} is not an integer in 0..{row.num_classes - 1}")
        return cls, probs

    def detection(self, row: LabelRow) -> np.ndarray:
        rec = self.files[row.kind].record(row)
        return _numbers(rec.get("bbox_pixels"), 4, "bbox_pixels")

    def regression(self, row: LabelRow) -> np.ndarray:
        rec = self.files[row.kind].record(row)
        return _numbers(rec.get("predicted_points_pixels"), 2 * row.num_classes, "predicted_points_pixels")

    def mask(self, row: LabelRow, shape: tuple[int, int]) -> np.ndarray:
        relative = output_mask_path(row.mask_path or "")
        path = self.root / relative
        if not relative or not path.is_file():
            raise BadPrediction(f"mask file {relative or row.mask_path!r} is missing")
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise BadPrediction(f"mask file {relative} cannot be read as an image")
        if mask.ndim != 2:
            raise BadPrediction(f"mask {relative} has {mask.shape[2]} channels, expected a single channel")
        if not np.issubdtype(mask.dtype, np.integer):
            raise BadPrediction(f"mask {relative} has dtype {mask.dtype}, expected integer class indices")
        if mask.shape != tuple(shape):
            raise BadPrediction(
                f"mask {relative} is {mask.shape[1]}x{mask.shape[0]} (WxH), expected {shape[1]}x{shape[0]}"
            )
        return mask
