"""Batched prediction of many rows: decoding and mask encoding overlap with the model.

Rows are grouped by task (over all CSVs) and cut into batches. A small thread pool
reads and preprocesses the images of the next batches while the engine runs the
current one, and resizes, argmaxes and writes the masks of finished batches
(OpenCV and file I/O release the GIL). At most ``prefetch`` batches are decoded
ahead and at most ``max_pending`` masks wait to be written, so memory stays bounded
whatever the number of rows: a full-size image lives only inside its worker.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

from inference.backend import Engine
from inference.batch_csv import Job, RowFailure
from inference.errors import EngineError
from inference.imaging import ImageReadError, image_size, preprocess, read_image
from inference.manifest import OUTPUT_ROLE, Preprocessing
from inference.postprocess import Size, decode, segmentation_mask
from inference.results import Results
from inference.tasks import TaskKind
from inference.writers import write_mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    jobs: list[Job]

    @property
    def task(self):
        return self.jobs[0].task


def make_batches(jobs: Sequence[Job], batch_size: int) -> list[Batch]:
    """Group by task id (first appearance order), then cut each group into batches."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.task.task_id, []).append(job)
    return [Batch(group[i:i + batch_size]) for group in groups.values() for i in range(0, len(group), batch_size)]


def _load(job: Job, prep: Preprocessing) -> tuple[np.ndarray, Size]:
    """Worker: read and preprocess one image (the full-size array is dropped here)."""
    image = read_image(job.row.image_file)
    return preprocess([image], prep)[0], (image.shape[0], image.shape[1])


def _finish_mask(target: Path, logits: np.ndarray, size: Size) -> None:
    """Worker: logits at the model's size -> native-size mask PNG, written atomically."""
    write_mask(target, segmentation_mask(logits, size))


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="predicting", unit="img", file=sys.stderr, disable=None, dynamic_ncols=True)


class Pipeline:
    def __init__(self, engine: Engine, prep: Preprocessing, results: Results, batch_size: int = 8,
                 workers: int = 2, prefetch: int = 2, max_pending: int = 64):
        self.engine, self.prep, self.results = engine, prep, results
        self.batch_size, self.workers = max(1, batch_size), max(1, workers)
        self.prefetch, self.max_pending = max(1, prefetch), max(1, max_pending)
        self.seconds = 0.0

    def _fail(self, job: Job, reason: str, size: Size | None = None) -> None:
        failure = RowFailure(job.row, reason, job.task.kind, job.task.num_classes, job.mask_target)
        if size is None and job.task.kind in (TaskKind.SEGMENTATION, TaskKind.DETECTION, TaskKind.REGRESSION):
            size = image_size(job.row.image_file)
        self.results.fail(failure, size, tuple(self.prep.input_size))

    def run(self, jobs: Sequence[Job]) -> None:
        started = time.perf_counter()
        batches = make_batches(jobs, self.batch_size)
        # log lines during the loop go through tqdm.write, so they never land inside the progress bar line
        with logging_redirect_tqdm(), ThreadPoolExecutor(self.workers, thread_name_prefix="io") as pool, \
                _progress(len(jobs)) as bar:
            upcoming: Iterator[Batch] = iter(batches)
            loading: deque[tuple[Batch, list[Future]]] = deque()
            writing: deque[tuple[Job, Future]] = deque()

            def load_next() -> None:
                batch = next(upcoming, None)
                if batch is not None:
                    loading.append((batch, [pool.submit(_load, job, self.prep) for job in batch.jobs]))

            for _ in range(self.prefetch):
                load_next()
            first = True
            while loading:
                batch, futures = loading.popleft()
                load_next()
                self._run_batch(batch, futures, pool, writing)
                self._log_batch(batch, first)
                first = False
                bar.update(len(batch.jobs))
                while len(writing) > self.max_pending:
                    self._collect(*writing.popleft())
            while writing:
                self._collect(*writing.popleft())
        self.seconds = time.perf_counter() - started

    @staticmethod
    def _log_batch(batch: Batch, first: bool) -> None:
        """Timestamps the benchmark reads (benchmarks.measure, which runs with -v): first results, then each model call."""
        now = time.time()
        if first:
            log.debug("first predictions ready at unix time %.6f", now)
        log.debug("batch done: %s %s %d images at unix time %.6f", batch.task.task_id, batch.task.kind.value,
                  len(batch.jobs), now)

    def _run_batch(self, batch: Batch, futures: list[Future], pool: ThreadPoolExecutor,
                   writing: deque[tuple[Job, Future]]) -> None:
        ready: list[tuple[Job, np.ndarray, Size]] = []
        for job, future in zip(batch.jobs, futures):
            try:
                tensor, size = future.result()
                ready.append((job, tensor, size))
            except (ImageReadError, OSError, ValueError) as exc:
                self._fail(job, str(exc))
        if not ready:
            return
        task = batch.task
        try:
            outputs = self.engine.run(task, np.stack([tensor for _, tensor, _ in ready]))
            output = outputs[OUTPUT_ROLE[task.kind]]
            if output.shape[0] != len(ready):
                raise EngineError(f"task {task.task_id}: engine returned {output.shape[0]} results for {len(ready)} images")
        except (EngineError, KeyError) as exc:
            for job, _, size in ready:
                self._fail(job, f"model failed: {exc}", size)
            return
        for i, (job, _, size) in enumerate(ready):
            if task.kind is TaskKind.SEGMENTATION:
                writing.append((job, pool.submit(_finish_mask, job.mask_target, output[i], size)))
                continue
            try:
                self.results.add(job.row, decode(task.kind, output[i], size))
            except ValueError as exc:
                self._fail(job, f"invalid model output: {exc}", size)

    def _collect(self, job: Job, future: Future) -> None:
        try:
            future.result()
        except (OSError, ValueError) as exc:
            self._fail(job, f"mask not written: {exc}")
            return
        self.results.mask_written(job.row)
