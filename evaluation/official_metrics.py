"""Per-image and per-task metric rules of the challenge's own evaluator ("official" mode).

These functions re-state, in our own code, the definitions the organisers' ``evaluate.py``
applies (read from its public source; see ``evaluation.official`` for the folder-level rules).
Where they differ from ``evaluation.metrics`` (our "strict" variants) it is on purpose:

- ``box_iou``: box areas are NOT clamped at zero (an inverted box has a negative area and can
  give a negative or >1 IoU); an empty union gives 0.0, even for two identical degenerate boxes.
- ``radial_error``: mean Euclidean distance in pixels, no normalisation; point arrays are
  reshaped to (N, 2) and broadcast like numpy does (one predicted point against N truths).
- ``dice_per_class`` / ``hausdorff_per_class``: every class 0..K-1, background included;
  Dice 1.0 when both masks lack the class; HD 0.0 when both lack it, the image diagonal
  when only one has it, else SimpleITK's Hausdorff distance with unit spacing.
- ``auc``: 2 classes: binary AUC of the class-1 probability, defined only when the labels
  hold both 0 and 1; more classes: macro one-vs-rest AUC, defined only when every class
  column has its class among the labels and every probability row sums to 1 (numpy
  ``allclose``). Wherever scikit-learn would refuse, the official AUC is 0.0 for the task.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from evaluation import metrics as M


def dice_per_class(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> list[float]:
    """Dice of every class index 0..num_classes-1 (1.0 where neither mask has the class)."""
    return [M.dice(pred == c, truth == c) for c in range(num_classes)]


def hausdorff_per_class(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> list[float]:
    """Hausdorff distance in pixels of every class index 0..num_classes-1 (see module doc)."""
    return [M.hausdorff(pred == c, truth == c) for c in range(num_classes)]


def foreground_mean(values: Sequence[float]) -> float:
    """Mean over classes 1.. (the per-image summary the official evaluator prints); 0.0 if none."""
    return float(np.mean(values[1:])) if len(values) > 1 else 0.0


def box_iou(pred_box: Sequence[float], true_box: Sequence[float]) -> float:
    """Official box IoU of [x_min, y_min, x_max, y_max] boxes (unclamped areas, see module doc)."""
    px1, py1, px2, py2 = (float(v) for v in pred_box)
    gx1, gy1, gx2, gy2 = (float(v) for v in true_box)
    inter = max(0.0, min(px2, gx2) - max(px1, gx1)) * max(0.0, min(py2, gy2) - max(py1, gy1))
    union = (px2 - px1) * (py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
    if union == 0:
        return 0.0
    return inter / union


def radial_error(pred_points: Sequence[float], true_points: Sequence[float]) -> float:
    """Mean Euclidean distance in pixels between (N, 2)-reshaped point lists (numpy broadcasting).

    Raises ValueError when the two point counts cannot be broadcast (the official script fails).
    """
    p = np.asarray(pred_points, dtype=float).reshape(-1, 2)
    g = np.asarray(true_points, dtype=float).reshape(-1, 2)
    try:
        diff = p - g
    except ValueError as exc:
        raise ValueError(f"{len(p)} predicted points cannot be paired with {len(g)} true points") from exc
    return float(np.mean(np.sqrt(np.sum(diff**2, axis=1))))


def auc(y_true: Sequence[int], probs: Optional[np.ndarray], num_classes: int) -> tuple[float, Optional[str]]:
    """The official task AUC and, when it is 0.0 for want of a definition, the reason."""
    y = np.asarray(y_true)
    if probs is None:
        return 0.0, "a record has no predicted_probs: official AUC is 0"
    try:
        p = np.asarray(probs, dtype=float)
    except (TypeError, ValueError):
        return 0.0, "probability lists of differing lengths or non-numbers: official AUC is 0"
    if p.ndim != 2 or p.shape[0] != len(y):
        return 0.0, f"probabilities of shape {p.shape} for {len(y)} labels: official AUC is 0"
    if not np.all(np.isfinite(p)):
        return 0.0, "probabilities hold NaN or infinity: official AUC is 0"
    present = sorted(set(y.tolist()))
    if num_classes == 2:
        if p.shape[1] < 2 or present != [0, 1]:
            return 0.0, f"binary AUC needs labels 0 and 1, the labels hold {present}: official AUC is 0"
        return float(roc_auc_score(y == 1, p[:, 1])), None
    if num_classes < 2:
        return 0.0, f"num_classes={num_classes}: official AUC is 0"
    if len(present) != p.shape[1]:
        absent = [c for c in range(p.shape[1]) if c not in present]
        return 0.0, f"class(es) {absent} absent from the labels: official AUC is 0 (strict mode averages the rest)"
    if not np.allclose(1.0, p.sum(axis=1)):
        return 0.0, "probability rows do not sum to 1: official AUC is 0"
    per_class = [roc_auc_score(y == cls, p[:, col]) for col, cls in enumerate(present)]
    value = float(np.mean(per_class))
    return (value, None) if math.isfinite(value) else (0.0, "AUC not finite: official AUC is 0")
