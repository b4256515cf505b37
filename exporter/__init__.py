"""Checkpoint, team network or team ONNX file -> verified ONNX model folder (``python export.py ... --out DIR``).

One pipeline (``exporter.pipeline``) fed by three sources (``exporter.sources``):

- a network described by stages: the baseline's checkpoint or a training checkpoint
  (``exporter.checkpoint``, ``exporter.loading``, ``exporter.encoders``), or a network handed
  to ``export_model``; written in the stage layout (``exporter.graphs``)::

      encoder.onnx             image -> c2, c3, c4, c5        (seed variants: their own stage names)
      fpn.onnx                 c2..c5 -> fpn                  (dense tasks only)
      heads/<task_id>.onnx     fpn or c5 -> <task_id>.<role>

- a team's PyTorch network (``export.py CKPT --model MODULE:FACTORY``: ``exporter.byom``,
  ``exporter.forward_call``) or ONNX file (``export.py model.onnx --task-map map.json``:
  ``exporter.task_map``, ``exporter.onnx_adapters``); written in the split layout
  (``exporter.split``): ``graphs/<task_id>.onnx`` (the whole graph pruned to each task's
  output) sharing ``graphs/weights.bin`` (ONNX external data: every weight once).

Every source then goes through the same stages: graphs, parity (``exporter.parity``),
precisions (``exporter.precision``: ``fp16/...``, ``int8/...`` beside fp32, deviation in
``exporter.deviation``), and the folder (``manifest.json`` written last, ``torch_extra.npz``
only for weights no graph holds: ``exporter.fallback``; atomic swap: ``exporter.folder``).

Optionally (``export.py --check-cpu``) the CPU variants are checked against fp32 on held-out images
(``exporter.cpu_check``, ``exporter.cpu_compare``, ``exporter.cpu_timing``) and the graphs a passed
variant runs are compiled into the folder (``exporter.cpu_compiled``: ``openvino/<variant>/``).

The PyTorch fallback rebuilds the network from the fp32 graphs' initializers
(``network.weights.load_model_from_folder``). Python API (``exporter.api``):
``export_model(model, out_dir, precisions, calibration_images, source)``,
``export_checkpoint(path, out_dir, encoder, tasks, input_size, precisions, calibration_dir)``,
``export_brought(checkpoint, out_dir, model, model_args, ...)`` and ``export_onnx(path, task_map, out_dir, ...)``.
"""

from exporter.api import export_brought, export_checkpoint, export_model, export_onnx
from exporter.errors import ExportError, UsageError

__all__ = ["ExportError", "UsageError", "export_brought", "export_checkpoint", "export_model", "export_onnx"]
