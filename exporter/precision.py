"""The precision stage: fp16 (CUDA) and int8 (CPU, static QDQ) graph sets beside fp32, with measured deviation.

The layout writes the files (``exporter.graphs``: per stage; ``exporter.split``: the whole
graph, then split); this stage decides what they are converted with and measures them:

- fp16 keeps float32 inputs and outputs. If the set produces non-finite values
  (squeeze-excitation pooling is the usual culprit), it is converted again with
  ``FP16_BLOCK_SAFE`` (pooling, reductions, softmax) kept in fp32.
- int8 is calibrated on the user's images (``--calibration-dir``) except a held-out
  quarter (when there are at least 8), on which, with synthetic ultrasound-like frames,
  the deviation from fp32 is then measured (``exporter.deviation``): realistic inputs
  only, noise is no use for judging an accuracy cost.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from contract.manifest import GraphSet, Preprocessing, TaskEntry
from exporter.deviation import measure_deviation
from exporter.errors import ExportError
from exporter.images import calibration_batches, image_like_batch
from exporter.sources.base import GraphLayout

log = logging.getLogger(__name__)

FP16_BLOCK_ALWAYS: list[str] = []
FP16_BLOCK_SAFE = ["GlobalAveragePool", "ReduceMean", "AveragePool", "Softmax"]
PROVIDERS = {
    "fp32": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "fp16": ["CUDAExecutionProvider"],
    "int8": ["CPUExecutionProvider"],
}


def export_variant(precision: str, layout: GraphLayout, stage_dir: Path, fp32: GraphSet, tasks: Sequence[TaskEntry],
                   prep: Preprocessing, calibration_images: Sequence[Path] | None) -> GraphSet:
    """Write the ``precision`` graph set under ``stage_dir/<precision>/`` and measure it against fp32."""
    evaluation = [image_like_batch(8, prep, seed=500)]
    if precision == "fp16":
        for block in (FP16_BLOCK_ALWAYS, FP16_BLOCK_SAFE):
            graphs = layout.write_fp16(stage_dir, fp32, block)
            graph_set = GraphSet(precision="fp16", graphs=graphs, providers=PROVIDERS["fp16"])
            figures = measure_deviation(layout, stage_dir, fp32, graph_set, tasks, evaluation)
            if np.isfinite(figures["max_rel_error"]) or block is FP16_BLOCK_SAFE:
                break
            log.warning("fp16 graphs produced non-finite values; keeping %s in fp32", ", ".join(FP16_BLOCK_SAFE))
    elif precision == "int8":
        files = list(calibration_images or [])
        held_out = files[3::4] if len(files) >= 8 else []
        calibrate = [f for f in files if f not in set(held_out)]
        graphs = layout.write_int8(stage_dir, fp32, calibration_batches(calibrate, prep))
        graph_set = GraphSet(precision="int8", graphs=graphs, providers=PROVIDERS["int8"])
        if held_out:
            evaluation += calibration_batches(held_out, prep)
        figures = measure_deviation(layout, stage_dir, fp32, graph_set, tasks, evaluation)
    else:
        raise ExportError(f"unknown precision {precision!r}")
    if not np.isfinite(figures["max_rel_error"]):
        raise ExportError(f"the {precision} graphs produce non-finite outputs; export without --precision {precision}")
    log.info("%s deviation from fp32: %s", precision, figures)
    return graph_set.model_copy(update={"deviation_from_fp32": figures})
