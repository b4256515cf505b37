"""The public Python API: load a model folder once, predict numpy images of any tasks in batches.

    from inference import api

    model = api.load("model_weights")                    # or api.load() for the CLI's default folder
    results = model.predict([image_a, image_b], ["fetal_head", "breast_2cls"],
                            image_paths=["a.png", "b.png"])
    results[0]["mask"]        # segmentation: H x W uint8 class indices at the image's own size
    results[1]                # other kinds: the JSON record the CLI writes, e.g.
                              # {"image_path": "b.png", "task_id": "breast_2cls",
                              #  "predicted_class": 1, "predicted_probs": [0.3, 0.7]}

Images are numpy arrays as ``contract.imaging.read_image`` returns them (H x W x 3 uint8
RGB); grey (H x W), RGBA and other dtypes are converted as the CLI converts files
(``contract.imaging.to_rgb8``). ``predict`` groups the images by task, runs each group in
batches of ``batch_size`` and returns the results in the order given; every result holds
``task_id`` (and ``image_path`` when ``image_paths`` is given). It is the CLI's prediction
(``inference.engines.predictor``: the same preprocessing, engine and decoding), so at the same
``precision`` a record equals the CLI's record for that row and a mask equals the CLI's PNG, pixel
for pixel. (With ``precision="auto"`` on a CPU with bf16 instructions, a long-lived ``Model`` may
use the model's checked bf16 CPU variant where a short CLI run stays on fp32: docs/cpu.md.)

A ``Model`` is meant to live as long as its process (a worker, an actor, a UDF's
executor): the engine (ONNX Runtime, PyTorch fallback) starts on the first ``predict``
and keeps its sessions. It is not thread-safe; use one per thread or process. See the
README section "Many images, many machines" for Ray Data, Spark and Beam.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, cast

import numpy as np

from contract.imaging import read_image, to_rgb8
from contract.kinds import Prediction, spec_of
from contract.tasks import TaskKind
from inference.engines.predictor import Predictor

__all__ = ["Model", "load"]


class Model:
    """A loaded model folder; ``predict`` / ``predict_files`` return one dict per image."""

    def __init__(self, predictor: Predictor, batch_size: int = 8):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.predictor, self.batch_size = predictor, batch_size

    @property
    def model_dir(self) -> Path:
        return self.predictor.folder.path

    @property
    def tasks(self) -> dict[str, TaskKind]:
        """The model's task ids and their kinds."""
        return {entry.task_id: entry.kind for entry in self.predictor.manifest.tasks}

    @property
    def engine(self) -> str:
        """What runs the model (e.g. ``onnxruntime 1.26.0 CPUExecutionProvider fp32``), once started."""
        return self.predictor.engine.description

    def predict(self, images: Sequence[np.ndarray], task_ids: Sequence[str],
                image_paths: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One result dict per image, in the given order (module docstring).

        Raises ValueError when the lengths differ or an image is not an image array,
        ``contract.tasks.UnknownTaskError`` (a KeyError) for a task the model lacks (before
        any image is run), ``inference.errors.EngineError``/``FatalError`` when no engine runs.
        """
        if len(images) != len(task_ids) or (image_paths is not None and len(image_paths) != len(images)):
            raise ValueError(f"got {len(images)} images, {len(task_ids)} task ids"
                             + ("" if image_paths is None else f" and {len(image_paths)} image paths")
                             + "; give one of each per image")
        for task_id in dict.fromkeys(task_ids):
            self.predictor.manifest.task(task_id)
        rgb = [_as_rgb(image, i) for i, image in enumerate(images)]
        groups: dict[str, list[int]] = {}
        for i, task_id in enumerate(task_ids):
            groups.setdefault(task_id, []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(images)
        for task_id, positions in groups.items():
            for start in range(0, len(positions), self.batch_size):
                chunk = positions[start:start + self.batch_size]
                predictions = self.predictor.predict(task_id, [rgb[i] for i in chunk])
                for i, prediction in zip(chunk, predictions):
                    path = None if image_paths is None else image_paths[i]
                    results[i] = _result(prediction, task_id, path)
        return cast(list[dict[str, Any]], results)  # every position was filled above

    def predict_files(self, paths: Sequence[str | Path], task_ids: Sequence[str],
                      image_paths: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """``predict`` on image files read as the CLI reads them (``contract.imaging.read_image``).

        ``image_paths`` (default: the paths as given) is what the records' ``image_path`` says.
        Raises ``contract.imaging.ImageReadError`` (a ValueError) naming an unreadable file.
        """
        names = [str(p) for p in paths] if image_paths is None else image_paths
        return self.predict([read_image(Path(p)) for p in paths], task_ids, names)


def load(model_dir: str | Path | None = None, device: str = "auto", precision: str = "auto",
         engine: str = "auto", threads: int | None = None, batch_size: int = 8, tta: str = "auto",
         expected_images: int | None = None) -> Model:
    """Open a model folder (manifest.json + ONNX graphs); ``ManifestError`` says what is wrong with it.

    ``model_dir`` None: the folder ``python -m inference`` would use (``/opt/ml/model``, then
    ``$FMC_MODEL_DIR``, then the baked-in ``model_weights/``). ``device``, ``precision``,
    ``engine``, ``threads`` and ``tta`` mean what the CLI's options of those names mean.
    ``expected_images``: how many images this model will predict, when known (a job's row count):
    ``precision="auto"`` on a CPU then decides as the CLI does for that many rows (docs/cpu.md).
    """
    if model_dir is None:
        from inference.startup import resolve_model_dir

        model_dir, _origin = resolve_model_dir(None)
    return Model(Predictor.open(Path(model_dir), engine, device, precision, threads, tta,
                                expected_images), batch_size)


def _as_rgb(image: np.ndarray, position: int) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image {position}: expected a numpy array, got {type(image).__name__}")
    try:
        return to_rgb8(image)
    except ValueError as exc:
        raise ValueError(f"image {position}: {exc}") from exc


def _result(prediction: Prediction, task_id: str, image_path: str | None) -> dict[str, Any]:
    if spec_of(prediction.kind).writes_mask:
        result: dict[str, Any] = {"image_path": image_path, "task_id": task_id, "mask": prediction.mask}
    else:
        result = prediction.record(image_path or "", task_id).model_dump(mode="json")
    if image_path is None:
        del result["image_path"]
    return result
