"""Generate a whole phantom dataset: many samples, optionally in worker processes, with a progress bar."""

from __future__ import annotations

import logging
import os
import shutil
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Mapping

import cv2
from tqdm import tqdm

from contract.tasks import TaskRegistry, TaskSpec
from phantoms.layout import TOP_LEVEL, write_csv, write_sample
from phantoms.render import render_sample

log = logging.getLogger(__name__)


class PhantomError(Exception):
    """A request the generator cannot carry out; the message says what to change."""


class OutputFolderError(PhantomError):
    """The output folder is not empty (without overwrite) or cannot be written."""


def prepare_output(out_dir: Path, overwrite: bool) -> Path:
    """Check that ``out_dir`` can take a dataset; with ``overwrite`` clear the dataset folders in it."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"output path {out} exists and is not a folder; choose another --out")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputFolderError(f"output folder {out} is not writable (no write permission on {probe})")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputFolderError(f"output folder {out} is not empty; pass --overwrite or choose an empty folder")
        for name in TOP_LEVEL:  # only what a previous run of the generator wrote
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolve_counts(
    registry: TaskRegistry,
    per_task: int | None = None,
    counts: Mapping[str, int] | None = None,
    tasks: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
) -> dict[str, int]:
    """Images per task id, in registry order, from ``per_task`` or explicit ``counts`` and the filters."""
    if counts:
        for task_id, n in counts.items():
            registry[task_id]  # raises UnknownTaskError naming the known ids
            if n < 0:
                raise PhantomError(f"count for {task_id} is negative ({n}); give 0 or more")
        base = {t.task_id: int(counts[t.task_id]) for t in registry if t.task_id in counts}
    else:
        n = 8 if per_task is None else int(per_task)
        if n < 0:
            raise PhantomError(f"--per-task is negative ({n}); give 0 or more")
        base = {t.task_id: n for t in registry}
    if tasks is not None:
        wanted = set(registry.select(list(tasks)).ids)
        base = {k: v for k, v in base.items() if k in wanted}
    if kinds is not None:
        from contract.tasks import TaskKind

        wanted_kinds = {TaskKind.parse(k) for k in kinds}
        base = {k: v for k, v in base.items() if registry[k].kind in wanted_kinds}
    if not base:
        raise PhantomError("no task selected: check --tasks / --kinds / --counts")
    return base


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; no nested thread pools


def _job(args: tuple[str, int, str, int, bool, float]) -> tuple[str, int, dict[str, str]]:
    root, seed, task_id, index, labels, size_scale = args
    spec = TaskRegistry.official()[task_id]
    sample = render_sample(spec, seed, index, size_scale)
    return task_id, index, write_sample(Path(root), sample, labels)


def generate_dataset(
    out_dir: str | os.PathLike,
    seed: int,
    counts: Mapping[str, int],
    labels: bool = True,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    size_scale: float = 1.0,
) -> Path:
    """Write ``counts[task_id]`` phantom images per task under ``out_dir`` in the FMC_UIA layout.

    Same arguments give byte-identical files. Returns the output folder.
    """
    registry = TaskRegistry.official()
    specs: list[TaskSpec] = [registry[t] for t in counts]
    root = prepare_output(Path(out_dir), overwrite)
    jobs = [(str(root), int(seed), s.task_id, i, labels, float(size_scale))
            for s in specs for i in range(int(counts[s.task_id]))]
    rows: dict[str, list[dict[str, str]]] = {s.task_id: [] for s in specs}
    bar = tqdm(total=len(jobs), desc="phantoms", unit="img", disable=not progress)
    try:
        if workers > 1 and len(jobs) > 1:
            # spawn, not fork: a forked child can inherit OpenCV's thread pool in a locked state and hang
            with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for task_id, _, row in pool.imap(_job, jobs, chunksize=4):
                    rows[task_id].append(row)
                    bar.update()
        else:
            for job in jobs:
                task_id, _, row = _job(job)
                rows[task_id].append(row)
                bar.update()
    finally:
        bar.close()
    for spec in specs:
        write_csv(root, spec, rows[spec.task_id], labels)
    log.info("wrote %d images for %d tasks under %s", len(jobs), len(specs), root)
    return root
