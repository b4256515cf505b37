"""One rendered phantom: its image, its labels and the file format it will be written in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.tasks import TaskSpec


@dataclass
class Sample:
    """One rendered phantom. ``image`` is HxW (grey) or HxWx3 (BGR) uint8."""

    task: TaskSpec
    index: int
    image: np.ndarray
    ext: str
    mask: np.ndarray | None = None  # segmentation: class map; detection: the nodule's mask
    label: int | None = None  # classification
    box: tuple[float, float, float, float] | None = None  # detection, native pixels
    points: list[tuple[float, float]] | None = None  # Regression, native pixels
    fov: np.ndarray | None = None  # boolean field of view (where the probe images), native pixels

    @property
    def stem(self) -> str:
        return f"{self.task.task_id}_{self.index:04d}"
