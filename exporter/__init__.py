"""Checkpoint -> verified ONNX model folder (``python export.py CHECKPOINT --out my_model/``).

Folder layout::

    manifest.json            contract.manifest.Manifest (pydantic), written last
    encoder.onnx             image -> c2, c3, c4, c5        (seed variants: their own stage names)
    fpn.onnx                 c2..c5 -> fpn                  (dense tasks only)
    heads/<task_id>.onnx     fpn or c5 -> <task_id>.<role>
    fp16/..., int8/...       optional graph sets (--precision), same names
    torch_extra.npz          only if some weights are used by no graph (e.g. smp EfficientNet's unused head)

A team's own network (``export.py CKPT --model MODULE:FACTORY``, ``exporter.byom``) or ONNX
file (``export.py model.onnx --task-map map.json``, ``exporter.byom_onnx``) is written as
``graphs/<task_id>.onnx`` (the whole graph pruned to each task's output) sharing
``graphs/weights.bin`` (ONNX external data: every weight once), see ``exporter.byom_graphs``.

The PyTorch fallback rebuilds the network from the fp32 graphs' initializers
(``network.weights.load_model_from_folder``). Python API:
``export_model(model, out_dir, precisions, calibration_images, source)`` and
``export_checkpoint(path, out_dir, encoder, tasks, input_size, precisions, calibration_dir)``.
"""

from exporter.api import export_checkpoint, export_model
from exporter.errors import ExportError

__all__ = ["ExportError", "export_checkpoint", "export_model"]
