"""Render one phantom sample in memory: image, labels and the file format it will be written in.

Each sample depends only on (seed, task_id, index): its random generator is seeded from the three,
so a subset of tasks or a smaller count reproduces exactly the same images.
"""

from __future__ import annotations

import zlib
from typing import Callable

import cv2
import numpy as np

from contract.tasks import TaskRegistry, TaskSpec
from phantoms import classification, detection, regression, segmentation
from phantoms.kinds import KIND_PHANTOMS
from phantoms.sample import Sample
from phantoms.ultrasound import Canvas, make_field

NATIVE_SIZES: tuple[tuple[int, int], ...] = (  # (width, height)
    (959, 661), (800, 540), (1200, 900), (512, 512), (640, 481), (1024, 768), (720, 557), (887, 613),
)
FORMATS: tuple[tuple[str, float], ...] = ((".png", 0.7), (".jpg", 0.15), (".bmp", 0.15))
COLOUR_FRACTION = 1 / 3

Renderer = Callable[[Canvas, TaskSpec, int], "list[tuple[float, float]] | None"]
_FAMILIES = (segmentation, classification, detection, regression)
RENDERERS: dict[str, Renderer] = {k: v for m in _FAMILIES for k, v in m.RENDERERS.items()}
PROBES: dict[str, str] = {k: v for m in _FAMILIES for k, v in m.PROBES.items()}


def sample_rng(seed: int, task_id: str, index: int) -> np.random.Generator:
    """The generator of one sample: independent of every other sample and of the task list."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(task_id.encode()), int(index)])


def render_sample(task: TaskSpec | str, seed: int, index: int, size_scale: float = 1.0) -> Sample:
    """Render image ``index`` of ``task`` for ``seed`` (a task id is looked up in the official registry).

    ``size_scale`` shrinks (or grows) the native size drawn for the image, e.g. 0.5 for a
    small sample set; 1.0 gives the sizes of ``NATIVE_SIZES``.
    """
    spec = TaskRegistry.official()[task] if isinstance(task, str) else task
    if spec.task_id not in RENDERERS:
        raise KeyError(f"no phantom renderer for task {spec.task_id!r}; known: {', '.join(sorted(RENDERERS))}")
    rng = sample_rng(seed, spec.task_id, index)
    width, height = NATIVE_SIZES[int(rng.integers(len(NATIVE_SIZES)))]
    if size_scale != 1.0:
        width, height = max(64, round(width * size_scale)), max(64, round(height * size_scale))
    ext = FORMATS[int(rng.choice(len(FORMATS), p=[p for _, p in FORMATS]))][0]
    colour = bool(rng.random() < COLOUR_FRACTION)
    field = make_field(rng, width, height, PROBES.get(spec.task_id, "curved"))
    canvas = Canvas(width, height, rng, field)
    label = KIND_PHANTOMS[spec.kind].drawn_class(spec, index)
    points = RENDERERS[spec.task_id](canvas, spec, label)
    grey = canvas.render()
    image = _decorate(grey, rng, colour)
    sample = Sample(spec, index, image, ext, fov=canvas.field_mask().astype(bool))
    KIND_PHANTOMS[spec.kind].fill(sample, canvas, label, points)
    return sample


def _decorate(grey: np.ndarray, rng: np.random.Generator, colour: bool) -> np.ndarray:
    """Scanner-like annotations outside the structures: text in the top corners, a depth scale."""
    h, w = grey.shape
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR) if colour else grey.copy()
    text_colour = (80, 220, 230) if colour else (200,)
    scale = 0.35 + 0.25 * w / 1200
    thick = 1 if w < 900 else 2
    label = f"{rng.choice(['C5-1', 'L12-4', 'C9-2', 'S5-1'])} {rng.uniform(2, 12):.1f}MHz"
    cv2.putText(img, label, (int(0.02 * w), int(0.05 * h)), cv2.FONT_HERSHEY_SIMPLEX, scale, text_colour, thick)
    cv2.putText(img, f"G{int(rng.integers(30, 70))} D{rng.uniform(8, 18):.0f}cm", (int(0.78 * w), int(0.05 * h)),
                cv2.FONT_HERSHEY_SIMPLEX, scale, text_colour, thick)
    x = int(0.975 * w)
    for k in range(1, 10):  # depth scale ticks on the right edge
        y = int(k * h / 10)
        cv2.line(img, (x, y), (x + max(2, w // 160), y), text_colour, 1)
    if colour:
        tint = rng.uniform([0.9, 0.95, 0.97], [1.0, 1.0, 1.05])
        img = cv2.multiply(img, (float(tint[0]), float(tint[1]), float(tint[2]), 0.0))
    return img
