"""Scoring a prediction folder the way the challenge's own ``evaluate.py`` does ("official" mode).

Folder-level rules (facts read from the organisers' public evaluator, re-implemented here):

- Every ``csv_files/*.csv`` row is read; a task's kind and class count come from its first
  row. Only the exact ``task_name`` values ``segmentation``, ``classification``,
  ``detection`` and ``Regression`` are scored; other tasks are ignored (with a note).
- A row whose prediction is missing (no mask file, no record, no predictions JSON) is
  SKIPPED, not scored as the worst case; so is a row whose ground-truth mask cannot be read.
  Each skipped row is listed as an issue; ``rows`` counts the rows that were scored.
- Records are matched on (task_id, image_path); of duplicate records the LAST one counts.
- Segmentation: masks are read as 8-bit grey; the prediction path is the CSV's
  ``mask_path`` with every ``../`` removed; a prediction of another size is resized to the
  truth's with nearest neighbour. Per class (background included) the mean over images of
  Dice and HD; the task's DSC/HD are the means over classes 1..K-1.
- Classification: accuracy, macro and weighted F1 and MCC over the rows with a record;
  AUC per ``official_metrics.auc`` (0.0 where undefined, e.g. a class absent from the labels).
- Detection: mean ``box_iou`` over rows with all four box columns and a record.
- Regression: ground-truth points from ``point_k_xy`` (a missing column counts as [0, 0]);
  mean ``radial_error`` in pixels (no normalisation).
- A task with no scored row gets 0.0 for every metric and is left out of the kind means.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from sklearn.metrics import f1_score, matthews_corrcoef

from evaluation import official_metrics as OM
from evaluation.official_io import PRED_FILES, OfficialRow, load_records, read_rows, segmentation_pair
from evaluation.labels import BOX_COLUMNS, LabelLayoutError
from evaluation.report import KindScore, Report, RowIssue, TaskScore

log = logging.getLogger(__name__)

KINDS = ("segmentation", "classification", "detection", "Regression")
LABEL_COLUMNS = {
    "segmentation": ("mask_path",),
    "classification": ("mask",),
    "detection": BOX_COLUMNS,
    "Regression": ("point_1_xy",),
}
METRICS = {
    "segmentation": ("dice", "hd"),
    "classification": ("auc", "f1", "f1_weighted", "mcc", "accuracy"),
    "detection": ("iou",),
    "Regression": ("mre",),
}


def _segmentation(rows, num_classes, ctx, issues):
    dices: list[list[float]] = []
    hds: list[list[float]] = []
    for row in rows:
        if "mask_path" not in row:
            continue
        try:
            pred, truth = segmentation_pair(row, ctx["csv_dir"], ctx["pred_dir"])
        except LookupError as exc:
            issues.append(row.issue(str(exc), "label"))
            continue
        except ValueError as exc:
            issues.append(row.issue(f"{exc} (official: row skipped)"))
            continue
        dices.append(OM.dice_per_class(pred, truth, num_classes))
        hds.append(OM.hausdorff_per_class(pred, truth, num_classes))
    if not dices:
        return 0, {"dice": 0.0, "hd": 0.0}, {}, []
    dice_c, hd_c = np.mean(dices, axis=0), np.mean(hds, axis=0)
    per_class = {str(c): {"dice": float(dice_c[c]), "hd": float(hd_c[c])} for c in range(num_classes)}
    fg = range(1, num_classes)
    metrics = {"dice": float(np.mean([dice_c[c] for c in fg])) if num_classes > 1 else 0.0,
               "hd": float(np.mean([hd_c[c] for c in fg])) if num_classes > 1 else 0.0}
    return len(dices), metrics, per_class, []


def _matched(rows, kind, ctx, issues):
    """(row, record value) for the rows that have a record; the others become issues."""
    records = ctx["records"][kind]
    for row in rows:
        key = (row["task_id"], row.get("image_path", ""))
        if records is None:
            issues.append(row.issue(f"{PRED_FILES[kind][0]} is missing (official: no score for the kind)"))
        elif key not in records:
            issues.append(row.issue(f"no record in {PRED_FILES[kind][0]} (official: row skipped)"))
        else:
            yield row, records[key]


def _classification(rows, num_classes, ctx, issues):
    y, yp, probs, notes = [], [], [], []
    labelled = []
    for row in rows:
        if "mask" in row:
            labelled.append(row)
        else:
            issues.append(row.issue("empty class label (the official script would stop here)", "label"))
    for row, (cls, p) in _matched(labelled, "classification", ctx, issues):
        y.append(int(float(row["mask"])))
        yp.append(cls)
        probs.append(p)
    if not y:
        return 0, dict.fromkeys(METRICS["classification"], 0.0), {}, notes
    yt, ypa = np.asarray(y), np.asarray(yp)
    value, note = OM.auc(yt, None if any(p is None for p in probs) else probs, num_classes)
    notes += [note] if note else []
    metrics = {
        "auc": value,
        "f1": float(f1_score(yt, ypa, average="macro", zero_division=0)),
        "f1_weighted": float(f1_score(yt, ypa, average="weighted", zero_division=0)),
        "mcc": _mcc(yt, ypa),
        "accuracy": float(np.mean(yt == ypa)),
    }
    return len(y), metrics, {}, notes


def _mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    with warnings.catch_warnings():  # one label only: scikit-learn warns and returns 0.0, as intended
        warnings.simplefilter("ignore", UserWarning)
        return float(matthews_corrcoef(y_true, y_pred))


def _detection(rows, num_classes, ctx, issues):
    labelled = [r for r in rows if all(c in r for c in BOX_COLUMNS)]
    ious = []
    for row, box in _matched(labelled, "detection", ctx, issues):
        try:
            ious.append(OM.box_iou(box, [float(row[c]) for c in BOX_COLUMNS]))
        except (TypeError, ValueError) as exc:
            issues.append(row.issue(f"bbox_pixels {box!r} unusable ({exc}); the official script would stop here"))
    return len(ious), {"iou": float(np.mean(ious)) if ious else 0.0}, {}, []


def _regression(rows, num_classes, ctx, issues):
    errors = []
    for row, points in _matched(rows, "Regression", ctx, issues):
        truth: list[float] = []
        for k in range(1, num_classes + 1):
            text = row.get(f"point_{k}_xy")
            truth.extend(json.loads(text) if text else [0, 0])
        try:
            errors.append(OM.radial_error(points, truth))
        except (TypeError, ValueError) as exc:
            issues.append(row.issue(f"{exc} (the official script would stop here)"))
    return len(errors), {"mre": float(np.mean(errors)) if errors else 0.0}, {}, []


_SCORERS = {"segmentation": _segmentation, "classification": _classification,
            "detection": _detection, "Regression": _regression}


def kind_means(tasks: list[TaskScore]) -> list[KindScore]:
    """Per kind, the mean over its tasks with at least one scored row (as the official summary)."""
    out = []
    for kind in KINDS:
        scored = [t for t in tasks if t.kind == kind and t.rows > 0]
        if not scored:
            continue
        metrics = {m: float(np.mean([t.metrics[m] for t in scored])) for m in METRICS[kind]}
        out.append(KindScore(kind=kind, tasks=len(scored), rows=sum(t.rows for t in scored),
                             missing=sum(t.missing for t in scored), metrics=metrics))
    return out


def evaluate_official(labels_dir: Path | str, predictions_dir: Path | str,
                      tasks: Optional[Iterable[str]] = None, order: Iterable[str] = ()) -> Report:
    """Score PRED_DIR against the labelled INPUT_DIR by the official rules (module doc)."""
    from evaluation.scoring import TaskSelectionError

    labels_dir, pred_dir = Path(labels_dir), Path(predictions_dir)
    rows = read_rows(labels_dir)
    config: dict[str, tuple[str, int]] = {}
    groups: dict[str, list[OfficialRow]] = defaultdict(list)
    for row in rows:
        task_id = row.get("task_id", "")
        config.setdefault(task_id, (row.get("task_name", ""), int(float(row.get("num_classes", "0")))))
        groups[task_id].append(row)
    notes = [f"{t}: task_name {k!r} is not one the official evaluator scores; ignored"
             for t, (k, _) in config.items() if k not in KINDS]
    ids = [t for t in order if t in config] + sorted(t for t in config if t not in set(order))
    ids = [t for t in ids if config[t][0] in KINDS]
    if tasks is not None:
        wanted = list(dict.fromkeys(tasks))
        unknown = [t for t in wanted if t not in ids]
        if unknown:
            raise TaskSelectionError(f"task(s) {unknown} have no rows in {labels_dir}; present: {ids}")
        ids = [t for t in ids if t in wanted]
    kinds = {config[t][0] for t in ids}
    labelled = [r for t in ids for r in groups[t] if all(c in r for c in LABEL_COLUMNS[config[t][0]])]
    if not labelled:
        raise LabelLayoutError(
            f"no row of {labels_dir} has a label ({', '.join(sorted({c for t in ids for c in LABEL_COLUMNS[config[t][0]]}))}); "
            "the evaluator needs a labelled folder (a test-phase CSV without labels cannot be scored)"
        )
    ctx = {"csv_dir": labels_dir / "csv_files", "pred_dir": pred_dir,
           "records": {k: load_records(pred_dir, k, notes) for k in PRED_FILES if k in kinds}}
    issues: list[RowIssue] = []
    scores = []
    for task_id in ids:
        kind, size = config[task_id]
        before = len(issues)
        scored, metrics, per_class, task_notes = _SCORERS[kind](groups[task_id], size, ctx, issues)
        missing = sum(1 for i in issues[before:] if i.scope == "prediction")
        scores.append(TaskScore(task_id=task_id, kind=kind, num_classes=size, rows=scored, missing=missing,
                                metrics=metrics, per_class=per_class, notes=task_notes))
    if not any(s.rows for s in scores) and all(i.scope == "label" for i in issues):
        raise LabelLayoutError(
            f"no row of {labels_dir} could be scored ({len(issues)} label problems, first: "
            f"{issues[0].describe() if issues else 'none'}); is this a labelled folder?"
        )
    notes += [f"{PRED_FILES[k][0]} is missing: the official evaluator reports no {k} scores"
              for k, recs in ctx["records"].items() if recs is None and not (pred_dir / PRED_FILES[k][0]).is_file()]
    notes += [f"{s.task_id}: {n}" for s in scores for n in s.notes]
    keys = {(r.get("task_id", ""), r.get("image_path", "")) for t in ids for r in groups[t]}
    unmatched = sum(1 for recs in ctx["records"].values() if recs for key in recs if key[0] in ids and key not in keys)
    return Report(labels_dir=str(labels_dir), predictions_dir=str(pred_dir), tasks=scores,
                  kinds=kind_means(scores), issues=issues, rows=sum(s.rows for s in scores),
                  missing_predictions=sum(1 for i in issues if i.scope == "prediction"),
                  label_problems=sum(1 for i in issues if i.scope == "label"), unmatched_records=unmatched, notes=notes,
                  metrics_mode="official")
