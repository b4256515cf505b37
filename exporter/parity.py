"""Parity: the fp32 graphs in ONNX Runtime (CPU) against the source's reference, for every output of every task.

Relative error of one output tensor: ``max|onnx - reference| / max(max|reference|, 1e-6)``
(the largest absolute deviation, relative to the tensor's largest magnitude). A task's
figure is the worst over its outputs, the batch sizes (1 and 8) and the input kinds
(random noise and ultrasound-like frames). The reference is the source's: PyTorch for a
network, the team's own file for an ONNX file (``exporter.sources``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from contract.manifest import GraphSet, Parity, Preprocessing
from exporter.errors import ParityError
from exporter.images import image_like_batch, random_batch
from exporter.runner import CheckRunner
from exporter.sources.base import GraphLayout, Source

log = logging.getLogger(__name__)

TOLERANCE_FP32 = 1e-4
BATCH_SIZES = (1, 8)


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """``max|actual - reference| / max(max|reference|, 1e-6)``; inf when shapes differ or values are not finite."""
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        return float("inf")
    if not np.all(np.isfinite(actual)):
        return float("inf")
    scale = max(float(np.max(np.abs(reference))) if reference.size else 0.0, 1e-6)
    return float(np.max(np.abs(actual - reference))) / scale if actual.size else 0.0


def parity_inputs(prep: Preprocessing, batch_sizes: Sequence[int] = BATCH_SIZES) -> list[tuple[str, np.ndarray]]:
    """(label, batch) pairs: random and image-like inputs at every batch size."""
    inputs = []
    for batch in batch_sizes:
        inputs.append((f"random/b{batch}", random_batch(batch, prep, seed=batch)))
        inputs.append((f"image-like/b{batch}", image_like_batch(batch, prep, seed=100 + batch)))
    return inputs


def measure_parity(source: Source, layout: GraphLayout, model_dir: Path, graph_set: GraphSet,
                   tolerance: float = TOLERANCE_FP32) -> Parity:
    """Compare the graphs with ``source.reference`` for every task; raise ParityError above ``tolerance``."""
    worst: dict[str, float] = {task.task_id: 0.0 for task in source.tasks}
    inputs = parity_inputs(source.config.preprocessing)
    for group in layout.groups(source.tasks):
        runner = CheckRunner(model_dir, graph_set, tasks=group)
        for label, batch in inputs:
            reference = source.reference(label, batch, group)
            actual = runner.outputs(batch)
            for task in group:
                for name in task.outputs.values():
                    error = relative_error(actual[name], reference[name])
                    worst[task.task_id] = max(worst[task.task_id], error)
                    log.debug("%s %s: %.3e", label, name, error)
    source.check_unchanged()
    failing = {task_id: err for task_id, err in worst.items() if not err <= tolerance}
    if failing:
        listing = ", ".join(f"{t} {e:.2e}" for t, e in sorted(failing.items(), key=lambda kv: -kv[1]))
        raise ParityError(f"{source.parity_subject} above {tolerance:.0e} (relative) for: {listing}"
                          + source.parity_hint(failing))
    return Parity(max_rel_error=worst, tolerance=tolerance, batch_sizes=list(BATCH_SIZES), inputs=source.parity_inputs)
