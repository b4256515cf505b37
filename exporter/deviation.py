"""How far a reduced-precision graph set is from fp32, in the terms postprocessing uses.

Figures (keys of ``GraphSet.deviation_from_fp32``), each the worst over tasks and images; what a
kind measures is its spec's ``deviation`` (``contract.kinds``):

- ``max_rel_error``: relative error (see ``exporter.parity``) over every task output;
- ``segmentation.mask_agreement_min``: fraction of pixels whose argmax class is unchanged;
- ``classification.max_abs_prob_diff`` and ``classification.argmax_agreement``;
- ``detection.max_abs_box_diff``: decoded box (cell of highest objectness), normalized units;
  ``detection.cell_agreement``: fraction of images whose chosen cell is unchanged;
- ``Regression.max_abs_point_diff``: normalized coordinates;
- ``images``: how many images were compared; ``measured_on_cuda``: 1 if the variant ran on CUDA.

Both sets run with ONNX Runtime, grouped as the layout groups its tasks. fp16 runs on
CUDA when a GPU is present (``measured_on_cuda`` = 1), else on the CPU provider, which
runs fp16 nodes lacking CPU kernels in fp32 (so the CPU figure shows the rounding of
weights and of tensors between nodes, not fp16 arithmetic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from contract.kinds import spec_of
from contract.manifest import GraphSet, TaskEntry
from exporter.parity import relative_error
from exporter.runner import CheckRunner
from exporter.sources.base import GraphLayout
from inference.engines.providers import cuda_unavailable_reason


def _merge(figures: dict[str, float], key: str, value: float, worst=max) -> None:
    figures[key] = worst(figures[key], value) if key in figures else value


def compare_outputs(
    tasks: list[TaskEntry], reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], figures: dict[str, float]
) -> None:
    """Fold one batch's comparison into ``figures`` (worst values kept)."""
    for task in tasks:
        name = task.output_tensor
        ref, out = reference[name].astype(np.float64), actual[name].astype(np.float64)
        _merge(figures, "max_rel_error", relative_error(out, ref))
        for key, value, worst in spec_of(task.kind).deviation(ref, out):
            _merge(figures, key, value, min if worst == "min" else max)


def measure_deviation(layout: GraphLayout, model_dir: Path, fp32: GraphSet, variant: GraphSet,
                      tasks: Sequence[TaskEntry], batches: list[np.ndarray]) -> dict[str, float]:
    """Compare ``variant`` with fp32 on ``batches``; the figures of the module docstring."""
    device = "cuda" if variant.precision == "fp16" and cuda_unavailable_reason() is None else "cpu"
    figures: dict[str, float] = {}
    on_cuda = True
    for group in layout.groups(tasks):
        reference = CheckRunner(model_dir, fp32, tasks=group)
        actual = CheckRunner(model_dir, variant, device, tasks=group)
        for batch in batches:
            compare_outputs(group, reference.outputs(batch), actual.outputs(batch), figures)
        on_cuda = on_cuda and actual.on_cuda
    figures["images"] = float(sum(len(b) for b in batches))
    figures["measured_on_cuda"] = float(on_cuda)
    return figures
