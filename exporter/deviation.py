"""How far a reduced-precision graph set is from fp32, in the terms postprocessing uses.

Figures (keys of ``GraphSet.deviation_from_fp32``), each the worst over tasks and images:

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
from contract.tasks import TaskKind


def decode_boxes(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N x 4 boxes at the cell of highest objectness, N chosen cell indices)."""
    objectness = grid[:, 4:].max(axis=1).reshape(len(grid), -1)
    cells = objectness.argmax(axis=1)
    boxes = grid[:, :4].reshape(len(grid), 4, -1)[np.arange(len(grid)), :, cells]
    return boxes, cells


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
        if task.kind is TaskKind.SEGMENTATION:
            _merge(figures, "segmentation.mask_agreement_min", float(np.mean(ref.argmax(1) == out.argmax(1))), min)
        elif task.kind is TaskKind.CLASSIFICATION:
            _merge(figures, "classification.max_abs_prob_diff", float(np.max(np.abs(ref - out))))
            _merge(figures, "classification.argmax_agreement", float(np.mean(ref.argmax(1) == out.argmax(1))), min)
        elif task.kind is TaskKind.DETECTION:
            (ref_box, ref_cell), (out_box, out_cell) = decode_boxes(ref), decode_boxes(out)
            _merge(figures, "detection.max_abs_box_diff", float(np.max(np.abs(ref_box - out_box))))
            _merge(figures, "detection.cell_agreement", float(np.mean(ref_cell == out_cell)), min)
        else:
            _merge(figures, "Regression.max_abs_point_diff", float(np.max(np.abs(ref - out))))
