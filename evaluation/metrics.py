"""Pure metric functions of the FMC_UIA 2026 challenge (docs/CHALLENGE.md, "Scoring"; these are the "strict" variants).

Every function takes plain numpy arrays / sequences and returns floats; none of them
reads files. Conventions fixed here (and relied on by the scorer):

- ``dice``: 2|P∩G| / (|P|+|G|) on boolean masks, 1.0 when both are empty.
- ``hausdorff``: SimpleITK ``HausdorffDistanceImageFilter`` with unit spacing, in
  pixels; 0.0 when both masks are empty, the image diagonal when only one is.
- ``iou``: continuous box IoU (no +1 pixel convention); an inverted box has zero
  area; 0.0 when the union is empty, unless the two boxes are identical (1.0).
- ``radial_errors`` / ``mre``: Euclidean distance in pixels per keypoint, and its mean.
- ``classification_metrics``: AUC, macro F1, MCC, accuracy. AUC is binary
  (probability of class 1) for 2 classes, else macro one-vs-rest averaged over the
  classes present in the labels (a class absent from the labels has no defined
  one-vs-rest AUC and is left out, with a note); NaN when fewer than two classes
  are present. With every class present this equals scikit-learn's
  ``roc_auc_score(..., multi_class="ovr", average="macro")``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, roc_auc_score


def image_diagonal(shape: Sequence[int]) -> float:
    """Diagonal in pixels of an image of shape (height, width, ...)."""
    return math.hypot(float(shape[0]), float(shape[1]))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks of the same shape; 1.0 when both are empty."""
    p, g = _binary_pair(pred, truth)
    total = int(p.sum()) + int(g.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, g).sum()) / total


def hausdorff(pred: np.ndarray, truth: np.ndarray) -> float:
    """Hausdorff distance in pixels (unit spacing) of two boolean 2-D masks.

    0.0 when both are empty, the image diagonal when exactly one is empty.
    """
    p, g = _binary_pair(pred, truth)
    p_any, g_any = bool(p.any()), bool(g.any())
    if not p_any and not g_any:
        return 0.0
    if p_any != g_any:
        return image_diagonal(p.shape)
    filt = sitk.HausdorffDistanceImageFilter()
    filt.Execute(_to_sitk(p), _to_sitk(g))
    return float(filt.GetHausdorffDistance())


def _to_sitk(mask: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([1.0] * mask.ndim)
    return image


def _binary_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: prediction {p.shape} vs truth {g.shape}")
    return p, g


def iou(pred_box: Sequence[float], true_box: Sequence[float]) -> float:
    """IoU of two boxes [x_min, y_min, x_max, y_max] in the same units."""
    px1, py1, px2, py2 = (float(v) for v in pred_box)
    gx1, gy1, gx2, gy2 = (float(v) for v in true_box)
    inter = max(0.0, min(px2, gx2) - max(px1, gx1)) * max(0.0, min(py2, gy2) - max(py1, gy1))
    area_p = max(0.0, px2 - px1) * max(0.0, py2 - py1)
    area_g = max(0.0, gx2 - gx1) * max(0.0, gy2 - gy1)
    union = area_p + area_g - inter
    if union <= 0.0:
        return 1.0 if (px1, py1, px2, py2) == (gx1, gy1, gx2, gy2) else 0.0
    return inter / union


def radial_errors(pred_points: Sequence[float], true_points: Sequence[float]) -> np.ndarray:
    """Euclidean distance per keypoint; points are flat [x1, y1, x2, y2, ...] or (N, 2)."""
    p = np.asarray(pred_points, dtype=float).reshape(-1, 2)
    g = np.asarray(true_points, dtype=float).reshape(-1, 2)
    if p.shape != g.shape:
        raise ValueError(f"point counts differ: prediction {len(p)} vs truth {len(g)}")
    return np.hypot(p[:, 0] - g[:, 0], p[:, 1] - g[:, 1])


def mre(pred_points: Sequence[float], true_points: Sequence[float]) -> float:
    """Mean radial error: mean Euclidean distance between corresponding points."""
    return float(radial_errors(pred_points, true_points).mean())


class ClassificationScores(BaseModel):
    """The four classification metrics of one task; ``auc`` may be NaN (see ``notes``)."""

    auc: float
    f1: float
    mcc: float
    accuracy: float
    notes: list[str] = []


def multiclass_auc(y_true: np.ndarray, probs: np.ndarray) -> tuple[float, list[str]]:
    """AUC: binary for 2 columns, else macro one-vs-rest over the classes present in y_true."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probs, dtype=float)
    present = sorted(set(y.tolist()))
    num_classes = p.shape[1]
    if len(present) < 2:
        return math.nan, [f"AUC undefined: only class(es) {present} present in the labels"]
    if num_classes == 2:
        return float(roc_auc_score(y == 1, p[:, 1])), []
    notes = []
    absent = [c for c in range(num_classes) if c not in present]
    if absent:
        notes.append(f"AUC averaged over the {len(present)} classes present; absent from labels: {absent}")
    per_class = [roc_auc_score(y == c, p[:, c]) for c in present]
    return float(np.mean(per_class)), notes


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], probs: np.ndarray
) -> ClassificationScores:
    """AUC (see ``multiclass_auc``), macro F1, MCC and accuracy of one task.

    Macro F1 follows scikit-learn's default label set (classes in y_true or y_pred),
    with 0 for a class that has no prediction or no label.
    """
    y = np.asarray(y_true, dtype=int)
    yp = np.asarray(y_pred, dtype=int)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] != len(y) or len(yp) != len(y):
        raise ValueError(f"inconsistent sizes: {len(y)} labels, {len(yp)} predictions, probs {p.shape}")
    auc, notes = multiclass_auc(y, p)
    return ClassificationScores(
        auc=auc,
        f1=float(f1_score(y, yp, average="macro", zero_division=0)),
        mcc=float(matthews_corrcoef(y, yp)),
        accuracy=float(accuracy_score(y, yp)),
        notes=notes,
    )
