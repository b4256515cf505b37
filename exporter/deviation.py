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
"""

from __future__ import annotations

import numpy as np

from exporter.parity import relative_error
from contract.manifest import TaskEntry
from contract.kinds import spec_of


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
