"""Training data: a labelled folder in the challenge layout, decoded once into arrays.

``load_dataset(root, input_size)`` reads ``root/csv_files/*.csv`` (through
``evaluation.read_labels``, the same parser the evaluator uses), decodes every
image with ``contract.imaging.read_image`` and resizes it to the network's
input size with ``cv2.INTER_LINEAR`` (exactly what ``contract.imaging.preprocess``
does before normalizing), and prepares the targets at that size:

- segmentation: the mask PNG (class indices) resized with nearest neighbour;
- classification: the class index;
- Regression: points normalized by the ORIGINAL width / height (x/W, y/H);
- detection: the box normalized the same way.

The result, one ``TaskData`` per task, can be kept in a ``.npz`` cache file keyed
by the CSV contents and the input size, so that a resumed or repeated run does
not decode the images again. Anything unusable stops loading with a
``TrainingDataError`` naming the CSV file, the row and the reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from evaluation.labels import LabelLayoutError, LabelRow, read_labels
from contract.imaging import ImageReadError, read_image
from contract.tasks import TaskKind, TaskRegistry, TaskSpec
from training.errors import TrainingDataError
from training.kinds import KIND_TRAINING

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class TaskData:
    """All samples of one task at the network's input size.

    ``images``: N x H x W x 3 uint8 RGB; ``sizes``: N x 2 original (height, width);
    ``target``: N x H x W uint8 masks (segmentation), N int64 labels (classification),
    N x 2M float32 normalized points (Regression) or N x 4 float32 normalized boxes (detection).
    """

    spec: TaskSpec
    images: np.ndarray
    sizes: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _where(root: Path, row: LabelRow) -> str:
    return f"{root / 'csv_files' / row.csv_file} row {row.row}"


def _decode_task(root: Path, spec: TaskSpec, rows: list[LabelRow], size: tuple[int, int]) -> TaskData:
    images = np.empty((len(rows), size[0], size[1], 3), dtype=np.uint8)
    sizes = np.empty((len(rows), 2), dtype=np.int64)
    targets = []
    for i, row in enumerate(rows):
        where = _where(root, row)
        if not row.image_file.is_file():
            raise TrainingDataError(f"{where}: image file {row.image_file} not found (image_path={row.image_path!r})")
        try:
            image = read_image(row.image_file)
        except ImageReadError as exc:
            raise TrainingDataError(f"{where}: {exc}") from None
        height, width = image.shape[:2]
        images[i] = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        sizes[i] = (height, width)
        targets.append(KIND_TRAINING[row.kind].target(row, height, width, size, where))
    return TaskData(spec=spec, images=images, sizes=sizes, target=np.stack(targets))


def _specs(root: Path, rows: list[LabelRow]) -> dict[str, TaskSpec]:
    """One TaskSpec per task id; rows of one task must agree, official tasks keep their size."""
    official = TaskRegistry.official()
    specs: dict[str, TaskSpec] = {}
    for row in rows:
        spec = TaskSpec(task_id=row.task_id, kind=row.kind, num_classes=row.num_classes)
        if row.task_id in official and official[row.task_id] != spec:
            ref = official[row.task_id]
            raise TrainingDataError(
                f"{_where(root, row)}: task {row.task_id} is {spec.kind.value} with {spec.num_classes} "
                f"but the official task is {ref.kind.value} with {ref.num_classes}"
            )
        known = specs.setdefault(row.task_id, spec)
        if known != spec:
            raise TrainingDataError(
                f"{_where(root, row)}: task {row.task_id} is {spec.kind.value}/{spec.num_classes} here "
                f"but {known.kind.value}/{known.num_classes} in earlier rows"
            )
    return specs


def _cache_key(root: Path, size: tuple[int, int]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} {size[0]}x{size[1]}".encode())
    for csv_file in sorted((root / "csv_files").glob("*.csv")):
        digest.update(csv_file.name.encode())
        digest.update(csv_file.read_bytes())
    return digest.hexdigest()[:16]


def _save_cache(path: Path, data: dict[str, TaskData]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for task_id, task in data.items():
        arrays[f"{task_id}/spec"] = np.array([task.spec.kind.value, str(task.spec.num_classes)])
        arrays[f"{task_id}/images"] = task.images
        arrays[f"{task_id}/sizes"] = task.sizes
        arrays[f"{task_id}/target"] = task.target
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cache.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_cache(path: Path) -> dict[str, TaskData]:
    data: dict[str, TaskData] = {}
    with np.load(path, allow_pickle=False) as archive:
        task_ids = sorted({name.rsplit("/", 1)[0] for name in archive.files})
        for task_id in task_ids:
            kind, size = archive[f"{task_id}/spec"].tolist()
            spec = TaskSpec(task_id=task_id, kind=TaskKind.parse(kind), num_classes=int(size))
            data[task_id] = TaskData(spec, archive[f"{task_id}/images"], archive[f"{task_id}/sizes"],
                                     archive[f"{task_id}/target"])
    return data


def load_dataset(
    root: Path,
    input_size: tuple[int, int],
    cache_dir: Path | None = None,
    tasks: Iterable[str] | None = None,
) -> dict[str, TaskData]:
    """Decode a labelled challenge-layout folder into per-task arrays (see the module docstring).

    ``tasks`` narrows to those task ids (an id absent from the folder raises).
    Raises TrainingDataError with ``file row N: reason`` for anything unusable.
    """
    root = Path(root)
    size = (int(input_size[0]), int(input_size[1]))
    try:
        rows, issues = read_labels(root)
    except (LabelLayoutError, UnicodeDecodeError, OSError) as exc:
        raise TrainingDataError(f"{root}: not a labelled folder in the challenge layout: {exc}") from None
    if issues:
        first = issues[0]
        more = f" (and {len(issues) - 1} more bad rows)" if len(issues) > 1 else ""
        raise TrainingDataError(f"{root / 'csv_files' / first.csv_file} row {first.row}: {first.reason}{more}")
    specs = _specs(root, rows)
    cache = Path(cache_dir) / f"{root.resolve().name}-{_cache_key(root, size)}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        log.info("reading decoded %s from cache %s", root, cache)
        data = _load_cache(cache)
    else:
        data = {}
        for task_id, spec in specs.items():
            data[task_id] = _decode_task(root, spec, [r for r in rows if r.task_id == task_id], size)
            log.info("%s: %d images decoded", task_id, len(data[task_id]))
        if cache is not None:
            _save_cache(cache, data)
            log.info("decoded data cached in %s", cache)
    if tasks is not None:
        wanted = list(tasks)
        missing = [t for t in wanted if t not in data]
        if missing:
            raise TrainingDataError(f"{root}: no rows for task(s) {missing}; the folder has {sorted(data)}")
        data = {t: data[t] for t in wanted}
    return data
