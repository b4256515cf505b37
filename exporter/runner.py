"""The exporter's checks run the graphs with the runtime's own runner (``inference.engines.runner``).

Parity and precision deviations are therefore measured on the code the image runs:
the same session options, the same provider choice, the same graph chaining. Its
``EngineError`` becomes ``ExportError`` here, so ``export.py`` reports it as one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.manifest import GraphSet
from exporter.errors import ExportError
from inference.errors import EngineError
from inference.engines.runner import GraphRunner


class CheckRunner:
    """Every graph of a set, run in the set's order on a batch; failures as ExportError."""

    def __init__(self, model_dir: Path, graph_set: GraphSet, device: str = "cpu"):
        try:
            self.runner = GraphRunner(Path(model_dir), graph_set, device)
        except EngineError as exc:
            raise ExportError(str(exc)) from exc

    def run(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """All tensors produced by the set's graphs for ``image``."""
        try:
            return self.runner.run(image)
        except EngineError as exc:
            raise ExportError(str(exc)) from exc

    @property
    def on_cuda(self) -> bool:
        """True when every session made so far runs on the CUDA provider."""
        sessions = self.runner.sessions.values()
        return bool(sessions) and all("CUDAExecutionProvider" in s.get_providers() for s in sessions)
