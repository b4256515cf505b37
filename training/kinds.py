"""Everything training does differently per task kind, in one table: ``KIND_TRAINING``.

Per kind: the target a labelled row becomes at the network's input size (``target``), the
recipe's loss (``loss``, ``training.losses``), the validation metrics computed from the raw
head outputs (``metrics``) and the headline one of them that the checkpoint score uses
(``headline``). A new kind adds one entry here (``tests/test_kind_specs.py`` names the tables
that lack it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from contract.tasks import TaskKind, TaskSpec
from evaluation.labels import LabelRow
from evaluation.metrics import classification_metrics, dice, iou
from training.errors import TrainingDataError
from training.losses import LossSettings, classification_loss, detection_loss, regression_loss, segmentation_loss

Target = Callable[[LabelRow, int, int, tuple[int, int], str], np.ndarray]
Metrics = Callable[[TaskSpec, np.ndarray, np.ndarray, np.ndarray], dict[str, float]]


@dataclass(frozen=True)
class KindTraining:
    target: Target  # (row, height, width, input size, where) -> target at the input size
    loss: Callable  # (head output, target, settings) -> scalar
    metrics: Metrics  # (task, targets, original sizes N x 2, raw outputs) -> {metric: value}
    headline: str


def read_mask(row: LabelRow, shape: tuple[int, int], where: str) -> np.ndarray:
    """A row's label mask, checked against the image's shape and the task's class count."""
    if row.mask_file is None or not row.mask_file.is_file():
        raise TrainingDataError(f"{where}: mask file {row.mask_file} not found (mask_path={row.mask_path!r})")
    mask = cv2.imread(str(row.mask_file), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise TrainingDataError(f"{where}: mask file {row.mask_file} cannot be decoded")
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    if mask.shape != shape:
        raise TrainingDataError(f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is {shape[1]}x{shape[0]}")
    top = int(mask.max())
    if top >= row.num_classes:
        raise TrainingDataError(f"{where}: mask holds class {top} but the task has {row.num_classes} classes")
    return mask


def _mask_target(row: LabelRow, height: int, width: int, size: tuple[int, int], where: str) -> np.ndarray:
    mask = read_mask(row, (height, width), where)
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _label_target(row: LabelRow, height: int, width: int, size: tuple[int, int], where: str) -> np.ndarray:
    return np.asarray(row.label, dtype=np.int64)


def _points_target(row: LabelRow, height: int, width: int, size: tuple[int, int], where: str) -> np.ndarray:
    points = np.asarray(row.points, dtype=np.float64).reshape(-1, 2) / np.array([width, height], dtype=np.float64)
    return points.reshape(-1).astype(np.float32)


def _box_target(row: LabelRow, height: int, width: int, size: tuple[int, int], where: str) -> np.ndarray:
    box = np.asarray(row.box, dtype=np.float64).reshape(2, 2)
    if np.any(box[1] <= box[0]):
        raise TrainingDataError(f"{where}: box {row.box} has x_max <= x_min or y_max <= y_min")
    return (box / np.array([width, height], dtype=np.float64)).reshape(-1).astype(np.float32)


def _mask_metrics(task: TaskSpec, target: np.ndarray, sizes: np.ndarray, output: np.ndarray) -> dict[str, float]:
    pred = output.argmax(axis=1)
    per_class = [np.mean([dice(p == c, t == c) for p, t in zip(pred, target)]) for c in range(1, task.num_classes)]
    return {"dice": float(np.mean(per_class))}


def _label_metrics(task: TaskSpec, target: np.ndarray, sizes: np.ndarray, output: np.ndarray) -> dict[str, float]:
    shifted = output - output.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    scores = classification_metrics(target, probs.argmax(axis=1), probs)
    return {"auc": scores.auc, "accuracy": scores.accuracy, "f1": scores.f1}


def _box_metrics(task: TaskSpec, target: np.ndarray, sizes: np.ndarray, output: np.ndarray) -> dict[str, float]:
    n, _, height, width = output.shape
    flat = output[:, 4].reshape(n, -1).argmax(axis=1)
    rows, cols = np.divmod(flat, width)
    boxes = output[np.arange(n), :4, rows, cols]
    return {"iou": float(np.mean([iou(b, t) for b, t in zip(boxes, target)]))}


def _points_metrics(task: TaskSpec, target: np.ndarray, sizes: np.ndarray, output: np.ndarray) -> dict[str, float]:
    sizes = sizes.astype(np.float64)  # (height, width)
    scale = np.stack([sizes[:, 1], sizes[:, 0]], axis=1)[:, None, :]
    pred = output.reshape(len(target), -1, 2) * scale
    true = target.reshape(len(target), -1, 2) * scale
    errors = np.hypot(*(pred - true).transpose(2, 0, 1)).mean(axis=1)
    diagonal = np.hypot(sizes[:, 0], sizes[:, 1])
    return {"mre_pct": float(np.mean(100.0 * errors / diagonal)), "mre_px": float(errors.mean())}


KIND_TRAINING: dict[TaskKind, KindTraining] = {
    TaskKind.SEGMENTATION: KindTraining(_mask_target, segmentation_loss, _mask_metrics, "dice"),
    TaskKind.CLASSIFICATION: KindTraining(_label_target, classification_loss, _label_metrics, "auc"),
    TaskKind.DETECTION: KindTraining(_box_target, detection_loss, _box_metrics, "iou"),
    TaskKind.REGRESSION: KindTraining(_points_target, lambda points, target, settings: regression_loss(points, target),
                                      _points_metrics, "mre_pct"),
}


def task_loss(kind: TaskKind, output, target, settings: LossSettings):
    """The recipe's loss for one batch of one task (``training.losses``)."""
    return KIND_TRAINING[kind].loss(output, target, settings)
