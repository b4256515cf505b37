"""The official metrics on predictions held in memory, row by row, for any subset of the rows.

The selection scores each candidate on many subsets of the validation rows (the folds of its
cross-validation), so each row's prediction is reduced once to what the official evaluator
(``evaluation.official``) would take from it, and a subset's score is aggregated from those,
by the same rules and the same per-image functions (``evaluation.official_metrics``):

==============  ======================================  ==============================================
kind            per row                                  a subset's task score
==============  ======================================  ==============================================
segmentation    Dice and Hausdorff of every class        per class the mean over rows, then the mean
                (background included), the prediction    over the foreground classes (``dice``, ``hd``)
                resized to the truth (nearest) if needed
classification  label, predicted class, probabilities    ``auc`` (0.0 where undefined), macro ``f1``,
                                                         ``f1_weighted``, ``mcc``, ``accuracy``
detection       box IoU of ``bbox_pixels``               the mean (``iou``)
Regression      mean radial error of the pixel points    the mean (``mre``, pixels)
==============  ======================================  ==============================================

``tests/test_selection.py`` checks that a chosen model's score here equals ``python -m
evaluation``'s official score of the same model run by ``python -m inference``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from sklearn.metrics import f1_score, matthews_corrcoef

from contract.kinds import Prediction
from contract.tasks import TaskKind
from evaluation import official_metrics as OM
from evaluation.labels import LabelRow

#: Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"hd", "mre"})


class ScoreError(ValueError):
    """A metric the kind does not report, or a prediction that cannot be scored."""


@dataclass(frozen=True)
class KindScorer:
    """How one kind's rows are reduced (``row``) and a subset of them scored (``aggregate``)."""

    metrics: tuple[str, ...]  # the official metrics of the kind, headline first
    row: Callable[[Prediction, LabelRow, Any], Any]  # (prediction, label row, truth mask or None) -> row value
    aggregate: Callable[[Sequence[Any], int], dict[str, float]]  # (row values, num_classes) -> metrics


def _segmentation_row(prediction: Prediction, label: LabelRow, truth: np.ndarray) -> tuple[list[float], list[float]]:
    pred = prediction.mask
    if pred.shape != truth.shape:  # the official scorer's rule
        pred = cv2.resize(pred, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_NEAREST)
    return OM.dice_per_class(pred, truth, label.num_classes), OM.hausdorff_per_class(pred, truth, label.num_classes)


def _segmentation_aggregate(rows: Sequence[tuple[list[float], list[float]]], num_classes: int) -> dict[str, float]:
    if not rows or num_classes < 2:
        return {"dice": 0.0, "hd": 0.0}
    dice = np.mean([r[0] for r in rows], axis=0)
    hd = np.mean([r[1] for r in rows], axis=0)
    return {"dice": float(np.mean(dice[1:])), "hd": float(np.mean(hd[1:]))}


def _classification_row(prediction: Prediction, label: LabelRow, truth: Any) -> tuple[int, int, list[float]]:
    fields = prediction.fields or {}
    label_class = int(label.label if label.label is not None else -1)
    return label_class, int(fields["predicted_class"]), list(fields["predicted_probs"])


def _classification_aggregate(rows: Sequence[tuple[int, int, list[float]]], num_classes: int) -> dict[str, float]:
    if not rows:
        return {"auc": 0.0, "f1": 0.0, "f1_weighted": 0.0, "mcc": 0.0, "accuracy": 0.0}
    y = np.asarray([r[0] for r in rows])
    predicted = np.asarray([r[1] for r in rows])
    auc, _ = OM.auc(y, [r[2] for r in rows], num_classes)
    with warnings.catch_warnings():  # one label only: scikit-learn warns and returns 0.0, as the official scorer
        warnings.simplefilter("ignore", UserWarning)
        mcc = float(matthews_corrcoef(y, predicted))
    return {"auc": float(auc), "f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
            "f1_weighted": float(f1_score(y, predicted, average="weighted", zero_division=0)),
            "mcc": mcc, "accuracy": float(np.mean(y == predicted))}


def _detection_row(prediction: Prediction, label: LabelRow, truth: Any) -> float:
    return OM.box_iou((prediction.fields or {})["bbox_pixels"], label.box or [])


def _mean_of(name: str) -> Callable[[Sequence[float], int], dict[str, float]]:
    return lambda rows, num_classes: {name: float(np.mean(rows)) if len(rows) else 0.0}


def _regression_row(prediction: Prediction, label: LabelRow, truth: Any) -> float:
    return OM.radial_error((prediction.fields or {})["predicted_points_pixels"], label.points or [])


SCORERS: dict[TaskKind, KindScorer] = {
    TaskKind.SEGMENTATION: KindScorer(("dice", "hd"), _segmentation_row, _segmentation_aggregate),
    TaskKind.CLASSIFICATION: KindScorer(("auc", "f1", "f1_weighted", "mcc", "accuracy"), _classification_row,
                                        _classification_aggregate),
    TaskKind.DETECTION: KindScorer(("iou",), _detection_row, _mean_of("iou")),
    TaskKind.REGRESSION: KindScorer(("mre",), _regression_row, _mean_of("mre")),
}


def default_metric(kind: TaskKind) -> str:
    """The metric a task of ``kind`` is chosen on unless told otherwise: the official headline."""
    return SCORERS[kind].metrics[0]


def check_metric(kind: TaskKind, metric: str) -> str:
    if metric not in SCORERS[kind].metrics:
        raise ScoreError(f"{kind.value} tasks are scored with {', '.join(SCORERS[kind].metrics)}, not {metric!r}")
    return metric


def ranking(kind: TaskKind, metric: str) -> tuple[str, ...]:
    """The metrics candidates are compared on, in order: ``metric``, then the kind's other metrics (tie-breakers)."""
    return (metric, *[m for m in SCORERS[kind].metrics if m != metric])


def compare(order: Sequence[str], a: dict[str, float], b: dict[str, float], tolerance: float = 1e-9) -> int:
    """1 when ``a`` is better than ``b`` on the first metric of ``order`` where they differ (beyond
    ``tolerance``), -1 when worse, 0 when they tie on every one."""
    for metric in order:
        if better(metric, a[metric], b[metric], tolerance):
            return 1
        if better(metric, b[metric], a[metric], tolerance):
            return -1
    return 0


def oriented(metric: str, value: float) -> float:
    """``value`` turned so that larger is better (lower-is-better metrics negated)."""
    return -value if metric in LOWER_IS_BETTER else value


def better(metric: str, a: float, b: float, tolerance: float = 1e-9) -> bool:
    """Whether ``a`` is better than ``b`` by more than ``tolerance`` (relative to their size, at least 1)."""
    scale = max(1.0, abs(a), abs(b))
    return oriented(metric, a) - oriented(metric, b) > tolerance * scale
