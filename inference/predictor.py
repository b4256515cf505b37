"""Per-image prediction for layouts that see a few images at a time (e.g. one case per job).

    predictor = Predictor.open(model_dir)            # manifest read; no session yet
    [prediction] = predictor.predict("fetal_head", [read_image(path)])
    prediction.mask                                  # segmentation: H x W uint8 at native size
    prediction.record(image_path, task_id)           # other kinds: a validated output record

The engine (ONNX Runtime, PyTorch fallback) is started on the first ``predict``,
with only the sessions that task's path needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from inference.backend import FallbackEngine
from inference.imaging import preprocess
from inference.manifest import OUTPUT_ROLE, Manifest, load_manifest
from inference.postprocess import Prediction, decode


class Predictor:
    def __init__(self, manifest: Manifest, engine: FallbackEngine):
        self.manifest, self.engine = manifest, engine

    @classmethod
    def open(cls, model_dir: Path, engine: str = "auto", device: str = "auto", precision: str = "auto",
             threads: int | None = None) -> "Predictor":
        """Read ``model_dir``'s manifest (ManifestError if unusable); the engine starts lazily."""
        manifest = load_manifest(Path(model_dir))
        return cls(manifest, FallbackEngine(Path(model_dir), manifest, engine, device, precision, threads))

    def predict(self, task_id: str, images: Sequence[np.ndarray]) -> list[Prediction]:
        """RGB uint8 images (``imaging.read_image``) -> one Prediction each, at each image's own size.

        Raises UnknownTaskError for a task the model lacks, EngineError/FatalError when no engine runs.
        """
        task = self.manifest.task(task_id)
        if not images:
            return []
        outputs = self.engine.run(task, preprocess(images, self.manifest.model.preprocessing))
        tensor = outputs[OUTPUT_ROLE[task.kind]]
        return [decode(task.kind, tensor[i], image.shape[:2]) for i, image in enumerate(images)]
