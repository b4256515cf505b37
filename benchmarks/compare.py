"""Agreement of two prediction folders on the same input, and the rule that refuses a ratio.

Rows come from the input's CSVs; records are matched on (``image_path``, ``task_id``),
masks on the CSV's ``mask_path``. Per kind:

- classification: largest absolute difference of ``predicted_probs`` (the share of
  equal ``predicted_class`` is reported; within the tolerance a class can change
  only where the two best probabilities were within twice the tolerance: a tie);
- detection: ``bbox_normalized`` (``bbox_pixels`` is not compared: the runtime clamps
  and orders it, the baseline's procedure does not);
- Regression: ``predicted_points_normalized`` (pixels are these times the size);
- segmentation: the fraction of pixels with the same class (mask agreement).

A row *differs* when a figure is beyond its tolerance or its prediction is missing
or unreadable. ``Tolerances`` of ``None`` report a figure without judging it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.csv_layout import input_rows
from exporter.cpu_compare import read_mask, read_records

JSON_FILES = {
    "classification": ("classification_predictions.json", "predicted_probs"),
    "detection": ("detection_predictions.json", "bbox_normalized"),
    "Regression": ("regression_predictions.json", "predicted_points_normalized"),
}


@dataclass(frozen=True)
class Tolerances:
    name: str
    probability: float | None
    coordinate: float | None
    mask_agreement: float | None  # per image, fraction of pixels


FP32_VS_REFERENCE = Tolerances("fp32 vs reference", probability=1e-4, coordinate=1e-4, mask_agreement=None)
REDUCED_VS_FP32 = Tolerances("reduced precision vs fp32", probability=0.02, coordinate=None, mask_agreement=0.99)


@dataclass
class Comparison:
    tolerances: Tolerances
    rows: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    differing: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.differing

    def fold(self, key: str, value: float, worst=max) -> None:
        self.figures[key] = worst(self.figures[key], value) if key in self.figures else value

    def as_dict(self) -> dict:
        return {"tolerances": self.tolerances.__dict__, "rows": self.rows, "agrees": self.agrees,
                "figures": self.figures, "differing_rows": self.differing}


def _compare_record(kind: str, expected: dict, actual: dict, tol: Tolerances, result: Comparison) -> str | None:
    key = JSON_FILES[kind][1]
    a, b = np.asarray(expected[key], np.float64), np.asarray(actual[key], np.float64)
    if a.shape != b.shape:
        return f"{key} has {b.size} values, expected {a.size}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if kind == "classification":
        result.fold("classification.max_abs_prob_diff", diff)
        same_class = expected["predicted_class"] == actual["predicted_class"]
        result.fold("classification.class_agreement_min", float(same_class), min)
        if tol.probability is not None and diff > tol.probability:
            return f"probabilities differ by {diff:.3g} (> {tol.probability:g})"
        return None
    name = "detection.max_abs_box_diff" if kind == "detection" else "Regression.max_abs_point_diff"
    result.fold(name, diff)
    if tol.coordinate is not None and diff > tol.coordinate:
        return f"{key} differ by {diff:.3g} (> {tol.coordinate:g}, normalized units)"
    return None


def _compare_mask(expected: np.ndarray | None, actual: np.ndarray | None, tol: Tolerances,
                  result: Comparison) -> str | None:
    if expected is None or actual is None:
        return "mask missing or unreadable" + (" (expected side)" if expected is None else "")
    if expected.shape != actual.shape:
        return f"mask shape {actual.shape} instead of {expected.shape}"
    agreement = float(np.mean(expected == actual))
    result.fold("segmentation.mask_agreement_min", agreement, min)
    result.figures["segmentation.mask_agreement_sum"] = result.figures.get("segmentation.mask_agreement_sum", 0) + agreement
    result.figures["segmentation.images"] = result.figures.get("segmentation.images", 0) + 1
    if tol.mask_agreement is not None and agreement < tol.mask_agreement:
        return f"mask agreement {agreement:.4f} (< {tol.mask_agreement:g})"
    return None


def compare_folders(input_dir: Path, expected_dir: Path, actual_dir: Path, tol: Tolerances) -> Comparison:
    """Compare ``actual_dir`` with ``expected_dir`` row by row (module docstring)."""
    result = Comparison(tol)
    records = {side: {k: read_records(d, JSON_FILES[k][0]) for k in JSON_FILES}
               for side, d in (("e", expected_dir), ("a", actual_dir))}
    for row in input_rows(input_dir):
        result.rows += 1
        kind = row.get("task_name", "")
        if kind == "segmentation":
            problem = _compare_mask(read_mask(expected_dir, row["mask_path"]), read_mask(actual_dir, row["mask_path"]), tol, result)
        elif kind in JSON_FILES:
            key = (row["image_path"], row["task_id"])
            expected, actual = records["e"][kind].get(key), records["a"][kind].get(key)
            if expected is None or actual is None:
                problem = "no record" + (" on the expected side" if expected is None else "")
            else:
                problem = _compare_record(kind, expected, actual, tol, result)
        else:
            problem = f"unknown task_name {kind!r}"
        if problem:
            result.differing.append(f"{row['_where']} ({row['task_id']}, {row['image_path']}): {problem}")
    images = result.figures.pop("segmentation.images", 0)
    total = result.figures.pop("segmentation.mask_agreement_sum", 0.0)
    if images:
        result.figures["segmentation.mask_agreement_mean"] = total / images
    return result
