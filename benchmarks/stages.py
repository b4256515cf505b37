"""Where the time goes: the runtime's stages timed one after the other, per task kind.

The runtime's own functions run serially in this process on a sample of the
benchmark's rows (``per_kind`` images of each kind, in whole batches of one task, the
kind's tasks in turn; each task and batch size is run once untimed first):

- ``decode``: ``imaging.read_image`` (file read, PNG/JPEG/BMP decoding, BGR to RGB);
- ``resize``: ``imaging.preprocess`` (bilinear resize to the input size, normalization);
- ``compute``: the task's ONNX graphs (``encoder``, ``fpn`` for dense kinds, the head),
  each timed on its own, in batches of ``batch_size`` images of one task;
- ``postprocess``: ``postprocess.decode`` (segmentation: logits resized to the native
  size, then argmax; other kinds: the record's fields);
- ``encode``: ``writers.write_mask`` (PNG encoding and the atomic write; segmentation only).

Figures are milliseconds per image of wall time with the engine's threads busy
only during ``compute``; the sum over stages is the serial cost of an image, which
the pipeline overlaps (decode and encode run in worker threads). For comparison,
``torch_compute`` times the reference's eager PyTorch forward on the same batches.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from contract.csv_layout import input_rows
from contract.imaging import preprocess, read_image
from contract.manifest import IMAGE_INPUT, OUTPUT_ROLE
from contract.kinds import decode, spec_of
from inference.outputs.writers import write_mask

log = logging.getLogger(__name__)

STAGES = ("decode", "resize", "compute", "postprocess", "encode")


def sample_rows(input_dir: Path, per_kind: int, batch_size: int) -> dict[str, list[dict[str, str]]]:
    """Up to ``per_kind`` rows of each kind: whole batches of one task, the kind's tasks in turn (CSV order)."""
    by_task: dict[str, dict[str, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for row in input_rows(input_dir):
        by_task[row["task_name"]][row["task_id"]].append(row)
    picked: dict[str, list[dict[str, str]]] = {}
    for kind, tasks in by_task.items():
        queues = [list(rows) for rows in tasks.values()]
        chosen: list[dict[str, str]] = []
        while len(chosen) < per_kind and any(queues):
            for queue in queues:
                take = min(batch_size, per_kind - len(chosen), len(queue))
                chosen += queue[:take]
                del queue[:take]
        picked[kind] = chosen
    return picked


def _timed(fn: Callable, *args):
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started


class _GraphTimer:
    """Runs a task's graph path on the CPU provider, timing each graph (name -> seconds)."""

    def __init__(self, model_dir: Path, precision: str, threads: int):
        from contract.manifest import ModelFolder
        from inference.engines.onnx_engine import OnnxEngine

        folder = ModelFolder.open(model_dir)
        self.manifest = folder.manifest
        self.engine = OnnxEngine(folder, device="cpu", precision=precision, threads=threads)

    def run(self, task, batch: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
        tensors: dict[str, np.ndarray] = {IMAGE_INPUT: batch}
        for name in task.path:
            session = self.engine.runner.session(name)
            feed = {spec.name: tensors[spec.name] for spec in session.get_inputs()}
            names = [out.name for out in session.get_outputs()]
            started = time.perf_counter()
            tensors.update(zip(names, session.run(names, feed)))
            seconds["head" if name.startswith("head.") else name] += time.perf_counter() - started
        return tensors[task.outputs[OUTPUT_ROLE[task.kind]]]


def profile_stages(input_dir: Path, model_dir: Path, precision: str = "fp32", per_kind: int = 16,
                   batch_size: int = 8, threads: int = 2, torch_compare: bool = False) -> dict:
    """Milliseconds per image of each stage, per kind (module docstring); also per graph of ``compute``."""
    torch_ms = _torch_compute_elsewhere(input_dir, model_dir, per_kind, batch_size, threads) if torch_compare else {}
    timer = _GraphTimer(Path(model_dir), precision, threads)
    prep = timer.manifest.model.preprocessing
    csv_dir = Path(input_dir) / "csv_files"
    warm = set()
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as scratch:
        for kind, rows in sample_rows(input_dir, per_kind, batch_size).items():
            stage = dict.fromkeys(STAGES, 0.0)
            graphs: dict[str, float] = defaultdict(float)
            by_task: dict[str, list[dict[str, str]]] = defaultdict(list)
            for row in rows:
                by_task[row["task_id"]].append(row)
            for task_id, task_rows in by_task.items():
                task = timer.manifest.task(task_id)
                for start in range(0, len(task_rows), batch_size):
                    chunk = task_rows[start:start + batch_size]
                    images, tensors = [], []
                    for row in chunk:
                        image, dt = _timed(read_image, csv_dir / row["image_path"])
                        stage["decode"] += dt
                        tensor, dt = _timed(preprocess, [image], prep)
                        stage["resize"] += dt
                        images.append(image)
                        tensors.append(tensor[0])
                    batch = np.stack(tensors)
                    if (task_id, len(batch)) not in warm:  # session creation and first runs are not timed
                        timer.run(task, batch, defaultdict(float))
                        warm.add((task_id, len(batch)))
                    before = sum(graphs.values())
                    output = timer.run(task, batch, graphs)
                    stage["compute"] += sum(graphs.values()) - before
                    for i, (row, image) in enumerate(zip(chunk, images)):
                        prediction, dt = _timed(decode, task.kind, output[i], image.shape[:2])
                        stage["postprocess"] += dt
                        if spec_of(task.kind).writes_mask:
                            _, dt = _timed(write_mask, Path(scratch) / f"{kind}_{start}_{i}.png", prediction.mask)
                            stage["encode"] += dt
            n = max(len(rows), 1)
            result[kind] = {
                "images": len(rows),
                "ms_per_image": {k: 1000 * v / n for k, v in stage.items()},
                "compute_ms_per_image_by_graph": {k: 1000 * v / n for k, v in graphs.items()},
            }
            if kind in torch_ms:
                result[kind]["torch_compute_ms_per_image"] = torch_ms[kind]
    return {"precision": precision, "batch_size": batch_size, "threads": threads, "kinds": result}


def _torch_compute_elsewhere(input_dir: Path, model_dir: Path, per_kind: int, batch_size: int,
                             threads: int) -> dict[str, float]:
    """The reference's eager forward, ms per image per kind, timed in a fresh process.

    A separate process keeps PyTorch's and ONNX Runtime's thread pools from competing.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(torch_compute, str(input_dir), str(model_dir), per_kind, batch_size, threads).result()


def torch_compute(input_dir: str, model_dir: str, per_kind: int, batch_size: int, threads: int) -> dict[str, float]:
    """Eager PyTorch forward (``model(images, task_id)``) on the sampled rows, ms per image per kind."""
    import torch

    from network.weights import load_model_from_folder

    torch.set_num_threads(threads)
    model, manifest = load_model_from_folder(Path(model_dir))
    prep = manifest.model.preprocessing
    csv_dir = Path(input_dir) / "csv_files"
    result = {}
    with torch.no_grad():
        for kind, rows in sample_rows(Path(input_dir), per_kind, batch_size).items():
            seconds, by_task = 0.0, defaultdict(list)
            for row in rows:
                by_task[row["task_id"]].append(row)
            for task_id, task_rows in by_task.items():
                for start in range(0, len(task_rows), batch_size):
                    chunk = task_rows[start:start + batch_size]
                    batch = torch.from_numpy(preprocess([read_image(csv_dir / r["image_path"]) for r in chunk], prep))
                    model(batch, task_id)  # warm-up: oneDNN prepares its kernels per shape
                    seconds += _timed(model, batch, task_id)[1]
            result[kind] = 1000 * seconds / max(len(rows), 1)
    return result


def model_floor(model_dir: Path, precision: str, task_id: str, batch_sizes=(1, 2, 8), threads: int = 2,
                repeats: int = 3) -> dict[int, float]:
    """Model-only milliseconds per image of one task on random input, best of ``repeats``, per batch size."""
    timer = _GraphTimer(Path(model_dir), precision, threads)
    task = timer.manifest.task(task_id)
    height, width = timer.manifest.model.preprocessing.input_size
    rng = np.random.default_rng(0)
    floor: dict[int, float] = {}
    for size in batch_sizes:
        batch = rng.standard_normal((size, 3, height, width)).astype(np.float32)
        timer.run(task, batch, defaultdict(float))
        best = min(_timed(timer.run, task, batch, defaultdict(float))[1] for _ in range(repeats))
        floor[size] = 1000 * best / size
    return floor
