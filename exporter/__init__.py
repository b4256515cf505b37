"""Checkpoint -> verified ONNX model folder (``python export.py CHECKPOINT --out model_weights/``)."""

from exporter.api import export_checkpoint, export_model
from exporter.errors import ExportError

__all__ = ["ExportError", "export_checkpoint", "export_model"]
