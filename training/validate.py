"""Per-epoch validation at the network's input size (a quick proxy of the challenge metrics).

Per task: segmentation mean Dice (per foreground class over images, then over
classes; argmax of the logits against the nearest-neighbour resized mask);
classification AUC and accuracy; detection IoU of the box read at the cell of
highest objectness; Regression MRE in percent of the ORIGINAL image diagonal
(predicted normalized points scaled back by the original width / height).
Per kind the mean over tasks, and one ``score`` in 0..1 for choosing the best
checkpoint: the mean over kinds of Dice, AUC, IoU and ``max(0, 1 - MRE% / 10)``.
The challenge evaluation itself (native resolution) is ``python -m evaluation``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from evaluation.metrics import classification_metrics, dice, iou
from contract.manifest import Preprocessing
from contract.tasks import TaskKind
from training.augment import uint8_to_input
from training.data import TaskData

KIND_METRIC = {
    TaskKind.SEGMENTATION: "dice",
    TaskKind.CLASSIFICATION: "auc",
    TaskKind.DETECTION: "iou",
    TaskKind.REGRESSION: "mre_pct",
}


@torch.no_grad()
def predict(model: torch.nn.Module, data: TaskData, prep: Preprocessing, device: torch.device,
            batch_size: int) -> np.ndarray:
    """Raw head outputs of the whole task, in eval mode, as one float32 array on the CPU."""
    outputs = []
    for start in range(0, len(data), batch_size):
        x = uint8_to_input(data.images[start:start + batch_size], prep).to(device)
        outputs.append(model(x, data.spec.task_id).float().cpu().numpy())
    return np.concatenate(outputs)


def task_metrics(data: TaskData, output: np.ndarray) -> dict[str, float]:
    """Metrics of one task from its raw head outputs (see the module docstring)."""
    kind = data.spec.kind
    if kind is TaskKind.SEGMENTATION:
        pred = output.argmax(axis=1)
        per_class = [np.mean([dice(p == c, t == c) for p, t in zip(pred, data.target)])
                     for c in range(1, data.spec.num_classes)]
        return {"dice": float(np.mean(per_class))}
    if kind is TaskKind.CLASSIFICATION:
        shifted = output - output.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        scores = classification_metrics(data.target, probs.argmax(axis=1), probs)
        return {"auc": scores.auc, "accuracy": scores.accuracy, "f1": scores.f1}
    if kind is TaskKind.DETECTION:
        n, _, height, width = output.shape
        flat = output[:, 4].reshape(n, -1).argmax(axis=1)
        rows, cols = np.divmod(flat, width)
        boxes = output[np.arange(n), :4, rows, cols]
        return {"iou": float(np.mean([iou(b, t) for b, t in zip(boxes, data.target)]))}
    sizes = data.sizes.astype(np.float64)  # (height, width)
    scale = np.stack([sizes[:, 1], sizes[:, 0]], axis=1)[:, None, :]
    pred = output.reshape(len(data), -1, 2) * scale
    true = data.target.reshape(len(data), -1, 2) * scale
    errors = np.hypot(*(pred - true).transpose(2, 0, 1)).mean(axis=1)
    diagonal = np.hypot(sizes[:, 0], sizes[:, 1])
    return {"mre_pct": float(np.mean(100.0 * errors / diagonal)), "mre_px": float(errors.mean())}


def summarize(per_task: dict[str, dict[str, float]], kinds: dict[str, TaskKind]) -> dict:
    """Per-kind means of the headline metric and the selection score."""
    by_kind: dict[str, float] = {}
    for kind, metric in KIND_METRIC.items():
        values = [m[metric] for t, m in per_task.items() if kinds[t] is kind and not math.isnan(m[metric])]
        if values:
            by_kind[f"{kind.value}.{metric}"] = float(np.mean(values))
    parts = []
    for key, value in by_kind.items():
        parts.append(max(0.0, 1.0 - value / 10.0) if key.endswith("mre_pct") else value)
    return {"kinds": by_kind, "score": float(np.mean(parts)) if parts else float("nan")}


def validate(model: torch.nn.Module, data: dict[str, TaskData], prep: Preprocessing, device: torch.device,
             batch_size: int = 32) -> dict:
    """Run every task of ``data`` through ``model``; returns ``{"tasks", "kinds", "score"}``."""
    was_training = model.training
    model.eval()
    try:
        per_task = {task_id: task_metrics(task, predict(model, task, prep, device, batch_size))
                    for task_id, task in data.items()}
    finally:
        model.train(was_training)
    summary = summarize(per_task, {t: d.spec.kind for t, d in data.items()})
    return {"tasks": per_task, **summary}


def format_summary(metrics: dict) -> str:
    """One line per kind plus the score, for the log."""
    parts = [f"{key} {value:.4f}" for key, value in metrics["kinds"].items()]
    return f"score {metrics['score']:.4f} | " + " | ".join(parts)
