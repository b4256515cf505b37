"""The benchmark's input: phantoms in the proportions of the official validation set, cached.

The official validation set has 2,674 segmentation, 2,727 classification, 725
detection and 617 Regression rows. ``validation_counts(scale)`` scales each kind's
total and spreads it evenly over the kind's tasks (the first tasks of the registry
take the remainder), with at least one image per task so that all 27 heads run.

Datasets are cached under ``data/bench/`` in a folder named by scale, seed and
labels; a ``.complete`` file written last (holding the counts) marks a folder as
usable, so an interrupted generation is redone, never reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from contract.tasks import OFFICIAL_VALIDATION_ROWS, TaskRegistry

log = logging.getLogger(__name__)

#: Rows per kind in the official FMC_UIA 2026 validation set (``contract.tasks``).
VALIDATION_ROWS = OFFICIAL_VALIDATION_ROWS
CACHE_ROOT = Path("data/bench")
COMPLETE = ".complete"


def validation_counts(scale: float, registry: TaskRegistry | None = None) -> dict[str, int]:
    """Images per task id: each kind's validation total times ``scale``, spread over its tasks."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    registry = registry or TaskRegistry.official()
    counts: dict[str, int] = {}
    for kind, rows in VALIDATION_ROWS.items():
        tasks = [t.task_id for t in registry if t.kind is kind]
        if not tasks:
            continue
        total = max(len(tasks), round(rows * scale))
        share, extra = divmod(total, len(tasks))
        for i, task_id in enumerate(tasks):
            counts[task_id] = share + (1 if i < extra else 0)
    return {t.task_id: counts[t.task_id] for t in registry if t.task_id in counts}


def kind_totals(counts: dict[str, int], registry: TaskRegistry | None = None) -> dict[str, int]:
    """Images per kind (the CSV spelling of the kind) of a counts mapping."""
    registry = registry or TaskRegistry.official()
    totals: dict[str, int] = {}
    for task_id, n in counts.items():
        kind = registry[task_id].kind.value
        totals[kind] = totals.get(kind, 0) + n
    return totals


def cached_phantoms(name: str, seed: int, counts: dict[str, int], labels: bool,
                    cache_root: Path = CACHE_ROOT, workers: int = 2) -> Path:
    """The phantom folder ``cache_root/name``, generated once (same counts and seed: reused)."""
    from phantoms import generate_dataset

    folder = Path(cache_root) / name
    marker = folder / COMPLETE
    wanted = {"seed": seed, "labels": labels, "counts": counts}
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == wanted:
                log.info("phantom set %s: cached (%d images)", folder, sum(counts.values()))
                return folder
        except (OSError, ValueError):
            pass
    if folder.exists():
        shutil.rmtree(folder)
    log.info("phantom set %s: generating %d images (seed %d)", folder, sum(counts.values()), seed)
    generate_dataset(folder, seed, counts, labels=labels, workers=workers, overwrite=False, progress=False)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted))
    os.replace(tmp, marker)
    return folder


def benchmark_set(scale: float, seed: int, cache_root: Path = CACHE_ROOT) -> tuple[Path, dict[str, int]]:
    """The timed input set (no label columns, like a test-phase input) and its counts."""
    counts = validation_counts(scale)
    return cached_phantoms(f"phantoms_scale{scale:g}_seed{seed}", seed, counts, labels=False,
                           cache_root=cache_root), counts
