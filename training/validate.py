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

from contract.manifest import Preprocessing
from contract.tasks import TaskKind
from training.augment import uint8_to_input
from training.data import TaskData
from training.kinds import KIND_TRAINING



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
    return KIND_TRAINING[data.spec.kind].metrics(data.spec, data.target, data.sizes, output)


def summarize(per_task: dict[str, dict[str, float]], kinds: dict[str, TaskKind]) -> dict:
    """Per-kind means of the headline metric and the selection score."""
    by_kind: dict[str, float] = {}
    for kind, metric in ((kind, table.headline) for kind, table in KIND_TRAINING.items()):
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
