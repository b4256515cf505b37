"""Scoring a prediction folder against a labelled folder: ``evaluate(...) -> Report``.

Missing or malformed predictions are recorded per row (``Report.issues``, scope
``prediction``) and scored as the worst case for that row:

- segmentation: Dice 0 and HD = image diagonal for every foreground class;
- classification: predicted_class = (true + 1) mod K with all probability on it;
- detection: IoU 0;
- Regression: every point off by the image diagonal (MRE = diagonal, 100 %).

Rows whose label cannot be used (ground-truth mask or image missing, bad label
value) are recorded with scope ``label`` and left out of the scores.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from contract.tasks import TaskKind, TaskRegistry
from evaluation import metrics as M
from evaluation.labels import LabelLayoutError, LabelRow, read_labels
from evaluation.predictions import BadPrediction, PredictionFolder
from evaluation.report import Report, RowIssue, TaskScore, finite_or_none, summarize_kinds

log = logging.getLogger(__name__)


class TaskSelectionError(ValueError):
    """--tasks names a task that the label folder does not have."""


class _LabelProblem(Exception):
    """The label side of a row is unusable (image or ground-truth mask unreadable)."""


def _issue(row: LabelRow, reason: str, scope: str = "prediction") -> RowIssue:
    return RowIssue(
        csv_file=row.csv_file, row=row.row, line=row.line, image_path=row.image_path, task_id=row.task_id, scope=scope, reason=reason
    )


def _read_truth_mask(row: LabelRow) -> np.ndarray:
    mask = cv2.imread(str(row.mask_file), cv2.IMREAD_UNCHANGED) if row.mask_file and row.mask_file.is_file() else None
    if mask is None:
        raise _LabelProblem(f"ground-truth mask {row.mask_file} is missing or unreadable")
    if mask.ndim == 3:
        if not all(np.array_equal(mask[..., 0], mask[..., c]) for c in range(1, mask.shape[2])):
            raise _LabelProblem(f"ground-truth mask {row.mask_file} has differing colour channels")
        mask = mask[..., 0]
    return mask


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, from its header when SimpleITK can read it."""
    if not path.is_file():
        raise _LabelProblem(f"image {path} is missing")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        width, height = reader.GetSize()[:2]
        return int(height), int(width)
    except RuntimeError:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise _LabelProblem(f"image {path} cannot be read") from None
        return int(image.shape[0]), int(image.shape[1])


def _score_segmentation(spec: tuple[str, int], rows: list[LabelRow], preds: PredictionFolder, issues: list[RowIssue]):
    task_id, num_classes = spec
    dices: dict[int, list[float]] = defaultdict(list)
    hds: dict[int, list[float]] = defaultdict(list)
    scored = missing = 0
    for row in tqdm(rows, desc=task_id, disable=None, leave=False):
        try:
            truth = _read_truth_mask(row)
        except _LabelProblem as exc:
            issues.append(_issue(row, str(exc), "label"))
            continue
        scored += 1
        try:
            pred: Optional[np.ndarray] = preds.mask(row, truth.shape[:2])
        except BadPrediction as exc:
            issues.append(_issue(row, str(exc)))
            missing += 1
            pred = None
        diagonal = M.image_diagonal(truth.shape)
        for c in range(1, num_classes):
            if pred is None:
                dices[c].append(0.0)
                hds[c].append(diagonal)
            else:
                dices[c].append(M.dice(pred == c, truth == c))
                hds[c].append(M.hausdorff(pred == c, truth == c))
    classes = [c for c in range(1, num_classes) if dices.get(c)]
    per_class = {str(c): {"dice": float(np.mean(dices[c])), "hd": float(np.mean(hds[c]))} for c in classes}
    metrics = {
        "dice": float(np.mean([v["dice"] for v in per_class.values()])) if classes else None,
        "hd": float(np.mean([v["hd"] for v in per_class.values()])) if classes else None,
    }
    return scored, missing, metrics, per_class, []


def _score_classification(spec, rows, preds: PredictionFolder, issues):
    _, num_classes = spec
    y, yp, probs = [], [], []
    missing = 0
    for row in rows:
        try:
            cls, p = preds.classification(row)
        except BadPrediction as exc:
            issues.append(_issue(row, str(exc)))
            missing += 1
            cls = (row.label + 1) % num_classes
            p = np.eye(num_classes)[cls]
        y.append(row.label)
        yp.append(cls)
        probs.append(p)
    if not y:
        return 0, missing, {}, {}, []
    scores = M.classification_metrics(y, yp, np.vstack(probs))
    metrics = {k: finite_or_none(getattr(scores, k)) for k in ("auc", "f1", "mcc", "accuracy")}
    return len(y), missing, metrics, {}, scores.notes


def _score_detection(spec, rows, preds: PredictionFolder, issues):
    ious, missing = [], 0
    for row in rows:
        try:
            ious.append(M.iou(preds.detection(row), row.box))
        except BadPrediction as exc:
            issues.append(_issue(row, str(exc)))
            missing += 1
            ious.append(0.0)
    return len(ious), missing, {"iou": finite_or_none(np.mean(ious)) if ious else None}, {}, []


def _score_regression(spec, rows, preds: PredictionFolder, issues):
    errors, pct, missing = [], [], 0
    for row in rows:
        try:
            diagonal = M.image_diagonal(image_size(row.image_file))
        except _LabelProblem as exc:
            issues.append(_issue(row, str(exc), "label"))
            continue
        try:
            error = M.mre(preds.regression(row), row.points)
        except BadPrediction as exc:
            issues.append(_issue(row, str(exc)))
            missing += 1
            error = diagonal
        errors.append(error)
        pct.append(100.0 * error / diagonal)
    metrics = {
        "mre": finite_or_none(np.mean(errors)) if errors else None,
        "mre_pct_diag": finite_or_none(np.mean(pct)) if pct else None,
    }
    return len(errors), missing, metrics, {}, []


_SCORERS = {
    TaskKind.SEGMENTATION: _score_segmentation,
    TaskKind.CLASSIFICATION: _score_classification,
    TaskKind.DETECTION: _score_detection,
    TaskKind.REGRESSION: _score_regression,
}


def _group(rows: list[LabelRow], registry: TaskRegistry) -> dict[str, list[LabelRow]]:
    groups: dict[str, list[LabelRow]] = defaultdict(list)
    for row in rows:
        groups[row.task_id].append(row)
    official = [t for t in registry.ids if t in groups]
    others = sorted(t for t in groups if t not in registry)
    return {t: groups[t] for t in official + others}


def evaluate(
    labels_dir: Path | str,
    predictions_dir: Path | str,
    tasks: Optional[Iterable[str]] = None,
    registry: Optional[TaskRegistry] = None,
) -> Report:
    """Score PRED_DIR against the labelled INPUT_DIR; ``tasks`` narrows to those task ids.

    Raises LabelLayoutError (label folder not in the challenge layout, or no row
    with a usable label, e.g. a test-phase folder without ground-truth masks) and
    TaskSelectionError (a requested task has no label rows).
    """
    registry = registry or TaskRegistry.official()
    rows, issues = read_labels(Path(labels_dir), registry)
    groups = _group(rows, registry)
    if tasks is not None:
        wanted = list(dict.fromkeys(tasks))
        unknown = [t for t in wanted if t not in groups]
        if unknown:
            raise TaskSelectionError(f"task(s) {unknown} have no rows in {labels_dir}; present: {list(groups)}")
        groups = {t: groups[t] for t in groups if t in wanted}
        issues = [i for i in issues if i.task_id in wanted]
    preds = PredictionFolder(Path(predictions_dir), {g[0].kind for g in groups.values()})
    scores: list[TaskScore] = []
    for task_id, task_rows in groups.items():
        kinds = {r.kind for r in task_rows}
        sizes = {r.num_classes for r in task_rows}
        if len(kinds) > 1 or len(sizes) > 1:
            raise TaskSelectionError(f"task {task_id} has rows of several kinds/sizes: {kinds}, {sizes}")
        kind, size = kinds.pop(), sizes.pop()
        scored, missing, metrics, per_class, notes = _SCORERS[kind]((task_id, size), task_rows, preds, issues)
        scores.append(
            TaskScore(
                task_id=task_id,
                kind=kind.value,
                num_classes=size,
                rows=scored,
                missing=missing,
                metrics=metrics,
                per_class=per_class,
                notes=notes,
            )
        )
    if not any(s.rows for s in scores):
        raise LabelLayoutError(
            f"no row of {labels_dir} could be scored ({len(issues)} label problems, first: "
            f"{issues[0].describe() if issues else 'none'}); is this a labelled folder?"
        )
    selected = {s.task_id for s in scores}
    notes = [f"{problem}: every row of that kind scored as worst case" for problem in preds.file_problems()]
    notes += [f"{s.task_id}: {n}" for s in scores for n in s.notes]
    return Report(
        labels_dir=str(labels_dir),
        predictions_dir=str(predictions_dir),
        tasks=scores,
        kinds=summarize_kinds(scores),
        issues=issues,
        rows=sum(s.rows for s in scores),
        missing_predictions=sum(1 for i in issues if i.scope == "prediction"),
        label_problems=sum(1 for i in issues if i.scope == "label"),
        unmatched_records=preds.unmatched(rows, selected),
        notes=notes,
    )
