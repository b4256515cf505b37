"""ONNX Runtime (CPU) against PyTorch, for every output of every task.

Relative error of one output tensor: ``max|onnx - torch| / max(max|torch|, 1e-6)``
(the largest absolute deviation, relative to the tensor's largest magnitude).
A task's figure is the worst over its outputs, the batch sizes and the input kinds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from exporter.errors import ExportError, ParityError
from exporter.graphs import check_mode_unchanged, mode_snapshot, run_torch_stages
from exporter.images import image_like_batch, random_batch
from exporter.runner import CheckRunner
from contract.manifest import OUTPUT_ROLE, GraphSet, Parity, Preprocessing

log = logging.getLogger(__name__)

TOLERANCE_FP32 = 1e-4
BATCH_SIZES = (1, 8)
INPUT_KINDS = ("random", "image-like")


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


@torch.no_grad()
def check_forward_matches_stages(model: nn.Module, stage_tensors: dict[str, torch.Tensor], image: torch.Tensor) -> None:
    """The stages must compute what the model's own ``predict`` computes (one task per kind)."""
    seen = set()
    for task in model.config.tasks:
        if task.kind in seen:
            continue
        seen.add(task.kind)
        role = OUTPUT_ROLE[task.kind]
        direct = model.predict(image, task.task_id)[role]
        staged = stage_tensors[f"{task.task_id}.{role}"]
        error = relative_error(staged.numpy(), direct.numpy())
        if error > 1e-5:
            raise ExportError(f"task {task.task_id}: the export stages differ from the model's forward (rel. error {error:.2e})")


def measure_parity(
    model: nn.Module,
    model_dir: Path,
    graph_set: GraphSet,
    prep: Preprocessing,
    tolerance: float = TOLERANCE_FP32,
    batch_sizes: Sequence[int] = BATCH_SIZES,
) -> Parity:
    """Compare ORT CPU with PyTorch (eval mode) for every task; raise ParityError above ``tolerance``."""
    model.eval()
    before = mode_snapshot(model)
    stages = model.stages()
    outputs = task_outputs(model, stages)
    runner = CheckRunner(model_dir, graph_set)
    worst: dict[str, float] = {task.task_id: 0.0 for task in model.config.tasks}
    for label, batch in parity_inputs(prep, batch_sizes):
        reference = run_torch_stages(stages, torch.from_numpy(batch))
        if label == "image-like/b1":
            check_forward_matches_stages(model, reference, torch.from_numpy(batch))
        actual = runner.run(batch)
        for task in model.config.tasks:
            for name in outputs[task.task_id]:
                error = relative_error(actual[name], reference[name].numpy())
                worst[task.task_id] = max(worst[task.task_id], error)
                log.debug("%s %s: %.3e", label, name, error)
    check_mode_unchanged(model, before)
    failing = {task_id: err for task_id, err in worst.items() if not err <= tolerance}
    if failing:
        listing = ", ".join(f"{t} {e:.2e}" for t, e in sorted(failing.items(), key=lambda kv: -kv[1]))
        raise ParityError(
            f"ONNX Runtime differs from PyTorch above {tolerance:.0e} (relative) for: {listing}"
            + fp64_diagnostic(model, stages, outputs, failing, prep, batch_sizes)
        )
    return Parity(
        max_rel_error=worst,
        tolerance=tolerance,
        batch_sizes=list(batch_sizes),
        inputs=[f"{kind} (rel. error = max|onnx-torch| / max(max|torch|, 1e-6))" for kind in INPUT_KINDS],
    )


@torch.no_grad()
def fp64_diagnostic(model: nn.Module, stages: Sequence, outputs: dict[str, list[str]], failing: dict[str, float],
                    prep: Preprocessing, batch_sizes: Sequence[int]) -> str:
    """How far PyTorch's own fp32 result is from float64 on the same inputs (ill-conditioning shows here)."""
    import copy

    double = copy.deepcopy(model).double().eval()
    double_stages = double.stages()
    own = 0.0
    for _label, batch in parity_inputs(prep, batch_sizes):
        single = run_torch_stages(stages, torch.from_numpy(batch))
        exact = run_torch_stages(double_stages, torch.from_numpy(batch).double())
        for task_id in failing:
            for name in outputs[task_id]:
                own = max(own, relative_error(single[name].numpy(), exact[name].numpy()))
    if own > 0.1 * min(failing.values()):
        return (f"; PyTorch fp32 itself differs from float64 by up to {own:.1e} on these inputs: the network is "
                "ill-conditioned there (check its BatchNorm statistics), not the export")
    return f"; PyTorch fp32 agrees with float64 to {own:.1e}, so the ONNX graphs compute something else"


def task_outputs(model: nn.Module, stages: Sequence) -> dict[str, list[str]]:
    """task_id -> the tensor names of the last stage of its path (its outputs)."""
    by_name = {stage.name: stage for stage in stages}
    return {task.task_id: list(by_name[model.task_path(task.task_id)[-1]].outputs) for task in model.config.tasks}
