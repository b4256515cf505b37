"""Deterministic synthetic B-mode ultrasound phantoms for the 27 FMC_UIA tasks, in the challenge layout.

API:
- ``generate_dataset(out_dir, seed, counts, labels=True, workers=1, overwrite=False) -> Path``
- ``render_sample(task, seed, index) -> Sample`` (image, mask / label / box / points, file extension)
- ``resolve_counts(registry, per_task=None, counts=None, tasks=None, kinds=None) -> dict[str, int]``

CLI: ``python -m phantoms --out DIR --seed N [--per-task N | --counts id=N,...] [--tasks ...]
[--kinds ...] [--workers N] [--overwrite] [--no-labels]``.

The rendering pipeline is described in ``phantoms.ultrasound``; the per-task content and class rules
in the docstrings of ``phantoms.segmentation``, ``phantoms.classification``, ``phantoms.detection``
and ``phantoms.regression``; the file layout in ``phantoms.layout``.
"""

from phantoms.generate import OutputFolderError, PhantomError, generate_dataset, resolve_counts
from phantoms.render import NATIVE_SIZES, RENDERERS, Sample, render_sample

__all__ = [
    "NATIVE_SIZES",
    "RENDERERS",
    "OutputFolderError",
    "PhantomError",
    "Sample",
    "generate_dataset",
    "render_sample",
    "resolve_counts",
]
