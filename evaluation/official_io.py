"""Reading a labelled folder and a prediction folder as the official evaluator does (see ``evaluation.official``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from contract.csv_layout import CsvLayoutError, list_csv_files, read_csv_file
from evaluation.labels import LabelLayoutError
from evaluation.report import RowIssue

PRED_FILES = {
    "classification": ("classification_predictions.json", "predicted_class"),
    "detection": ("detection_predictions.json", "bbox_pixels"),
    "Regression": ("regression_predictions.json", "predicted_points_pixels"),
}


class OfficialRow(dict):
    """One CSV row (column -> text; empty cells are absent) plus where it came from."""

    csv_file: str = ""
    row: int = 0  # 1-based data row
    line: int = 0  # line in the CSV file (the header is line 1)

    def issue(self, reason: str, scope: str = "prediction") -> RowIssue:
        return RowIssue(csv_file=self.csv_file, row=self.row, line=self.line, image_path=self.get("image_path", ""),
                        task_id=self.get("task_id", ""), scope=scope, reason=reason)


def read_rows(labels_dir: Path) -> list[OfficialRow]:
    """Every data row of the labelled folder's CSVs (read by ``contract.csv_layout``); blank cells absent."""
    if not Path(labels_dir).is_dir():
        raise LabelLayoutError(f"label folder {labels_dir} does not exist")
    try:
        files = list_csv_files(labels_dir)
    except CsvLayoutError as exc:
        raise LabelLayoutError(str(exc)) from exc
    rows = []
    for path in files:
        for record in read_csv_file(path).records:
            row = OfficialRow({k: v for k, v in record.cells.items() if k and v.strip() != ""})
            row.csv_file, row.row, row.line = record.csv_name, record.row, record.line
            rows.append(row)
    return rows


def load_records(pred_dir: Path, kind: str, notes: list[str]) -> Optional[dict[tuple[str, str], Any]]:
    """(task_id, image_path) -> the kind's prediction value (last record wins); None if no usable file.

    Where the official script would stop with an error (invalid JSON, a record without a needed
    key), the file or the record is left out and a note says so.
    """
    name, field = PRED_FILES[kind]
    path = Path(pred_dir) / name
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        notes.append(f"{name} is not valid JSON ({exc}); the official evaluator would stop here")
        return None
    out: dict[tuple[str, str], Any] = {}
    bad = 0
    for rec in data if isinstance(data, list) else []:
        if not isinstance(rec, dict) or not all(k in rec for k in ("task_id", "image_path", field)):
            bad += 1
            continue
        value = (rec[field], rec.get("predicted_probs")) if kind == "classification" else rec[field]
        out[(rec["task_id"], rec["image_path"])] = value
    if bad or not isinstance(data, list):
        notes.append(f"{name}: {bad if isinstance(data, list) else 'all'} record(s) without task_id, image_path or "
                     f"{field} left out; the official evaluator would stop here")
    return out


def read_grey(path: Path) -> Optional[np.ndarray]:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None


def predicted_mask_path(pred_dir: Path, mask_path: str) -> Path:
    return Path(pred_dir) / mask_path.replace("../", "")


def segmentation_pair(row: OfficialRow, csv_dir: Path, pred_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(prediction resized to the truth, truth) as the official scorer reads them.

    Raises LookupError when the truth is unreadable, ValueError when the prediction is (row skipped).
    """
    truth = read_grey(Path(os.path.normpath(csv_dir / row["mask_path"])))
    if truth is None:
        raise LookupError(f"ground-truth mask {row['mask_path']} is missing or unreadable")
    pred = read_grey(predicted_mask_path(pred_dir, row["mask_path"]))
    if pred is None:
        raise ValueError(f"mask file {row['mask_path'].replace('../', '')} is missing or unreadable")
    if pred.shape != truth.shape:
        pred = cv2.resize(pred, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
    return pred, truth
