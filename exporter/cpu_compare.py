"""Two prediction folders of the same input, fp32 and a CPU variant, compared the way a user reads them.

Rows come from the input's ``csv_files/*.csv``; per row, by its kind:

- segmentation: the mask PNGs (native size), fraction of equal pixels >= ``mask_agreement``;
- classification: ``predicted_probs``, largest absolute difference <= ``probability``;
- detection: ``bbox_pixels``, largest absolute difference <= ``pixels``;
- Regression: ``predicted_points_pixels``, largest absolute difference <= ``pixels``.

When the input is labelled, both folders are scored with the official evaluator
(``evaluation.evaluate_official``) and every kind-mean metric must agree within ``metric``
(``metric_pixels`` for the Hausdorff distance and the MRE, which are in pixels).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from contract.csv_layout import input_rows, output_mask_path
from contract.kinds import KIND_SPECS, PREDICTION_FILES, spec_of
from contract.tasks import TaskKind

log = logging.getLogger(__name__)

TOLERANCES = {"mask_agreement": 0.99, "probability": 1e-2, "pixels": 1.0, "metric": 0.005, "metric_pixels": 1.0}
PIXEL_METRICS = ("hd", "mre")
#: The record field compared per JSON kind, and the tolerance it is held to (masks: ``mask_agreement``).
#: Per kind with records: the field compared and its tolerance (the kind's spec, ``KindSpec.compared``).
FIELDS = {kind: spec.compared for kind, spec in KIND_SPECS.items() if spec.compared is not None}


@dataclass
class VariantComparison:
    images: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)  # kinds with at least one row compared
    failed_kinds: set[str] = field(default_factory=set)

    @property
    def passed(self) -> bool:
        return self.images > 0 and not self.failures

    @property
    def kinds_passed(self) -> list[str]:
        """The kinds whose every row and official metric stayed within the tolerances."""
        return sorted(self.kinds - self.failed_kinds)

    def fail(self, kind: str, reason: str) -> None:
        self.failed_kinds.add(kind)
        self.failures.append(reason)

    def worst(self, key: str, value: float, pick=max) -> None:
        self.figures[key] = pick(self.figures[key], value) if key in self.figures else value


def read_records(folder: Path, file_name: str) -> dict[tuple[str, str], dict]:
    """The records of one predictions JSON file by (image_path, task_id); empty when the file is absent."""
    path = Path(folder) / file_name
    if not path.is_file():
        return {}
    return {(r["image_path"], r["task_id"]): r for r in json.loads(path.read_text(encoding="utf-8"))}


def read_mask(folder: Path, mask_path: str) -> np.ndarray | None:
    """The mask an output folder holds for a CSV row's ``mask_path``, or None when absent or unreadable."""
    path = Path(folder) / output_mask_path(mask_path)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None


def _compare_row(row: dict[str, str], kind: TaskKind, expected: Path, actual: Path, records: dict,
                 result: VariantComparison) -> str | None:
    if spec_of(kind).writes_mask:
        a, b = read_mask(expected, row["mask_path"]), read_mask(actual, row["mask_path"])
        if a is None or b is None or a.shape != b.shape:
            return "mask missing, unreadable or of another size"
        agreement = float(np.mean(a == b))
        result.worst("segmentation.mask_agreement_min", agreement, min)
        limit = TOLERANCES["mask_agreement"]
        return f"mask agreement {agreement:.4f} (< {limit})" if agreement < limit else None
    key = (row["image_path"], row["task_id"])
    a, b = records[0][kind].get(key), records[1][kind].get(key)
    if a is None or b is None:
        return "no record"
    name, tolerance = FIELDS[kind]
    diff = float(np.max(np.abs(np.asarray(a[name], np.float64) - np.asarray(b[name], np.float64))))
    limit = TOLERANCES[tolerance]
    result.worst(f"{kind.value}.max_abs_{name}_diff", diff)
    return f"{name} differ by {diff:.3g} (> {limit:g})" if diff > limit else None


def compare_outputs(input_dir: Path, expected: Path, actual: Path) -> VariantComparison:
    """``actual`` (the variant) against ``expected`` (fp32) on every row of ``input_dir`` (module docstring)."""
    result = VariantComparison()
    kinds = list(FIELDS)
    records = tuple({k: read_records(side, PREDICTION_FILES[k]) for k in kinds} for side in (expected, actual))
    for row in input_rows(input_dir):
        try:
            kind = TaskKind(row.get("task_name", ""))
        except ValueError:
            continue
        result.images += 1
        result.kinds.add(kind.value)
        problem = _compare_row(row, kind, expected, actual, records, result)
        if problem:
            result.fail(kind.value, f"{row['_where']} ({row['task_id']}): {problem}")
    _compare_metrics(input_dir, expected, actual, result)
    return result


def _compare_metrics(input_dir: Path, expected: Path, actual: Path, result: VariantComparison) -> None:
    """Official kind-mean metrics of both folders, when the input is labelled (else nothing is added)."""
    from evaluation.labels import LabelLayoutError
    from evaluation.official import evaluate_official

    try:
        reports = evaluate_official(input_dir, expected), evaluate_official(input_dir, actual)
    except LabelLayoutError as exc:
        log.info("official metrics not compared: %s", exc)
        return
    scores = [{(k.kind, m): v for k in report.kinds for m, v in k.metrics.items()} for report in reports]
    for (kind, metric), value in scores[0].items():
        other = scores[1].get((kind, metric))
        if value is None or other is None or not (np.isfinite(value) and np.isfinite(other)):
            continue
        gap = abs(other - value)
        pixels = metric in PIXEL_METRICS
        result.worst(f"metric_gap.{kind}.{metric}{'_px' if pixels else ''}", gap)
        limit = TOLERANCES["metric_pixels" if pixels else "metric"]
        if gap > limit:
            result.fail(kind, f"official {kind} {metric}: {value:.4f} at fp32, {other:.4f} (gap {gap:.4g} > "
                                   f"{limit:g})")
