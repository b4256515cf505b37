"""Each member's estimates of a task's validation images: the network runs once per member, never per candidate.

For one task, ``compute_task`` reads its labelled rows' images, preprocesses them as the
runtime does (``contract.imaging.preprocess``, batches of ``batch_size`` rows in CSV order),
and runs every member serving the task once: on the images, and, when the task's flip rule
flips, on their mirror images in the same call (``inference.engines.ensemble.member_estimates``,
the runtime's own code). It keeps the estimates in the units the runtime averages
(``inference.engines.combine``), so any candidate's role tensor is a weighted mean of cached
arrays (``role_tensor``), exactly as ``EnsembleEngine.run`` computes it.

Memory: one task at a time; per member one or two float64 estimate arrays of the task's rows
(segmentation: rows x classes x the network's input size x 8 bytes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from contract.flip import FlipRule
from contract.imaging import ImageReadError, preprocess, read_image
from contract.manifest import ModelFolder, Preprocessing, TaskEntry
from evaluation.labels import LabelRow
from evaluation.official_io import read_grey
from inference.engines.combine import combine
from inference.engines.ensemble import member_estimates
from inference.engines.fallback import Engine
from inference.errors import EngineError, FatalError
from selection.candidates import Candidate

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    """A task's validation rows and every serving member's cached estimates of them."""

    entry: TaskEntry  # the task as the chosen folder describes it
    rows: list[LabelRow]
    sizes: list[tuple[int, int]]  # native (height, width) of each row's image
    truths: list[Any]  # ground-truth masks (mask tasks), else None per row
    rule: FlipRule | None  # the task's flip rule when it flips, else None
    estimates: dict[int, list[np.ndarray]] = field(default_factory=dict)  # member -> [plain, mirror mirrored back]
    seconds: dict[int, float] = field(default_factory=dict)  # member -> seconds per image of its run(s)
    failed: dict[int, str] = field(default_factory=dict)  # member -> why it cannot serve the task here

    @property
    def serving(self) -> list[int]:
        """The members whose estimates are cached (those that ran without a fault)."""
        return sorted(self.estimates)

    def model_seconds(self, candidate: Candidate) -> float:
        """Measured model seconds per image of ``candidate`` (a flipped member's run counts both halves)."""
        total = 0.0
        for member, _ in candidate.members:
            both = self.seconds[member]
            total += both if candidate.flip or self.rule is None else both / 2
        return total


def role_tensor(data: TaskData, candidate: Candidate) -> np.ndarray:
    """The role tensor of every row under ``candidate``: the weighted mean of the cached estimates."""
    estimates: list[np.ndarray] = []
    weights: list[float] = []
    for member, weight in candidate.members:
        mine = data.estimates[member] if candidate.flip else data.estimates[member][:1]
        estimates += mine
        weights += [weight] * len(mine)
    return combine(data.entry.kind, estimates, weights)


def _readable(rows: Sequence[LabelRow], needs_truth: bool) -> tuple[list[LabelRow], list[np.ndarray], list[Any]]:
    """Rows whose image (and truth mask) can be read, with them; the others are logged and left out."""
    kept, images, truths = [], [], []
    for row in rows:
        try:
            image = read_image(row.image_file)
        except (ImageReadError, OSError) as exc:
            log.warning("validation row %s row %d left out: %s", row.csv_file, row.row, exc)
            continue
        truth = read_grey(row.mask_file) if needs_truth and row.mask_file is not None else None
        if needs_truth and truth is None:
            log.warning("validation row %s row %d left out: ground-truth mask %s is missing or unreadable",
                        row.csv_file, row.row, row.mask_path)
            continue
        kept.append(row)
        images.append(image)
        truths.append(truth)
    return kept, images, truths


def compute_task(entry: TaskEntry, rows: Sequence[LabelRow], needs_truth: bool, rule: FlipRule | None,
                 members: dict[int, tuple[ModelFolder, Engine]], prep: Preprocessing, batch_size: int) -> TaskData:
    """Run each serving member once over the task's rows (module docstring); ``members``: index -> (folder, engine)."""
    rows, images, truths = _readable(rows, needs_truth)
    data = TaskData(entry, rows, [image.shape[:2] for image in images], truths, rule)
    if not rows:
        return data
    batches = [preprocess(images[i:i + batch_size], prep) for i in range(0, len(images), batch_size)]
    del images
    for index, (folder, engine) in members.items():
        own = folder.manifest.task(entry.task_id)
        try:
            member_estimates(engine, own, batches[0][:1], None)  # warm-up: sessions made before the timing
            started = time.perf_counter()
            parts = [member_estimates(engine, own, batch, rule) for batch in batches]
        except (EngineError, FatalError, ValueError) as exc:  # ValueError: an output that cannot be decoded
            data.failed[index] = f"{type(exc).__name__}: {exc}"
            log.warning("task %s: member %d cannot serve it (%s); it is left out of the task's candidates",
                        entry.task_id, index, data.failed[index])
            continue
        data.seconds[index] = (time.perf_counter() - started) / len(rows)
        data.estimates[index] = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        log.info("task %s: member %d ran on %d rows%s in %.2f s per image", entry.task_id, index, len(rows),
                 " and their mirror images" if rule is not None else "", data.seconds[index])
    return data
