"""The per-image ``Predictor``: the model half of prediction for a few images at a time.

    predictor = Predictor.open(model_dir)            # manifest read once; no session yet
    [prediction] = predictor.predict("fetal_head", [read_image(path)])
    prediction.mask                                  # segmentation: H x W uint8 at native size
    prediction.record(image_path, task_id)           # other kinds: a validated output record

Stages: ``contract.imaging.preprocess`` -> ``infer_batch`` (the engine, then the task's
role tensor, checked) -> ``TaskEntry.decode`` at each image's own size (the kind's decoding,
then the task's mask postprocessing, if the manifest declares one). The batch
pipeline runs the same three stages, with decoding and mask writing in worker threads.
The engine (ONNX Runtime, PyTorch fallback) starts on the first batch, with only the
sessions that task's path needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from contract.imaging import preprocess
from contract.kinds import Prediction
from contract.manifest import ModelFolder
from inference.engines.factory import make_engine
from inference.engines.fallback import Engine
from inference.engines.infer import infer_batch


class Predictor:
    def __init__(self, folder: ModelFolder, engine: Engine):
        self.folder, self.engine = folder, engine

    @property
    def manifest(self):
        return self.folder.manifest

    @classmethod
    def open(cls, model_dir: Path, engine: str = "auto", device: str = "auto", precision: str = "auto",
             threads: int | None = None, tta: str = "auto", expected_images: int | None = None) -> "Predictor":
        """Read ``model_dir``'s manifest (ManifestError if unusable); the engine starts lazily.

        An ensemble folder, or ``tta="flip"``, gives the ensemble engine (``inference.engines.ensemble``).
        """
        folder = ModelFolder.open(Path(model_dir))
        return cls(folder, make_engine(folder, engine, device, precision, threads, tta,
                                       expected_images=expected_images))

    def predict(self, task_id: str, images: Sequence[np.ndarray]) -> list[Prediction]:
        """RGB uint8 images (``imaging.read_image``) -> one Prediction each, at each image's own size.

        Raises UnknownTaskError for a task the model lacks, EngineError/FatalError when no engine runs,
        ValueError when an output cannot be decoded.
        """
        task = self.manifest.task(task_id)
        if not images:
            return []
        output = infer_batch(self.engine, task, preprocess(images, self.manifest.model.preprocessing))
        return [task.decode(output[i], image.shape[:2]) for i, image in enumerate(images)]
