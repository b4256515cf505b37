"""PyTorch fallback engine: the same weights (rebuilt by ``network.weights``), the same roles.

The only place the runtime imports ``network`` (and torch).

Imported only when ONNX Runtime cannot load or run the graphs (or ``--engine torch``):
``torch`` costs seconds of start-up, so nothing on the ONNX path imports this module.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from inference.errors import EngineError
from contract.manifest import ModelFolder, TaskEntry

log = logging.getLogger(__name__)


class TorchEngine:
    """``model.predict(image, task_id)`` under ``torch.inference_mode`` on CUDA (if available) or CPU."""

    def __init__(self, folder: ModelFolder, device: str = "auto", threads: int | None = None):
        try:
            import torch
        except ImportError as exc:
            raise EngineError(
                f"PyTorch is not installed ({exc}); install requirements-torch.txt for the fallback engine"
            ) from exc
        try:
            from network.weights import load_model
        except ImportError as exc:
            raise EngineError(f"the network package cannot be imported: {exc}") from exc
        if device == "cuda" and not torch.cuda.is_available():
            raise EngineError("--device cuda, but PyTorch sees no usable CUDA device")
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        self.torch: Any = torch
        self.device = torch.device("cuda" if use_cuda else "cpu")
        if threads and not use_cuda:
            torch.set_num_threads(threads)
        try:
            model = load_model(folder.path, folder.manifest)
        except Exception as exc:  # weights rebuilt from ONNX initializers: many failure kinds
            raise EngineError(f"PyTorch cannot rebuild the model from {folder.path}: {type(exc).__name__}: {exc}") from exc
        self.model = model.eval().to(self.device)
        self.description = f"torch {torch.__version__} on {self.device} fp32"
        log.info("inference engine: %s", self.description)

    def run(self, task: TaskEntry, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        try:
            with torch.inference_mode():
                image = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
                outputs = self.model.predict(image, task.task_id)
                return {role: value.float().cpu().numpy() for role, value in outputs.items()}
        except Exception as exc:  # any failure of the model's forward pass
            raise EngineError(f"task {task.task_id}: PyTorch failed: {type(exc).__name__}: {exc}") from exc
