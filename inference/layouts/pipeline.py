"""Batched prediction of many images: decoding and mask encoding overlap with the model.

Items are grouped by task and cut into batches, a window of ``WINDOW`` items at a time:
items may come from a generator (rows streamed from CSV files) and are never all held.
A small thread pool reads and preprocesses the images of the next batches while the
engine runs the current one
(``engines.infer.infer_batch``), and resizes, argmaxes and writes the masks of finished
batches (OpenCV and file I/O release the GIL). At most ``prefetch`` batches are
decoded ahead and at most ``max_pending`` masks wait to be written, so memory stays
bounded whatever the number of items: a full-size image lives only inside its worker.

Faults stay local: anything one image raises while it is read, preprocessed, decoded or
its mask written (``MemoryError`` and ``cv2.error`` included) fails that item alone, and a
model failure fails that batch's items; the run goes on. ``should_stop`` (SIGTERM) is
read between batches: the current batch is finished and pending masks written.

The pipeline knows nothing of CSVs: an item is anything with an ``image_file``, a
``task`` and a ``mask_target``; what becomes of each result is the ``Sink``'s business.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from itertools import islice
from typing import Callable, Generic, Iterable, Iterator, Protocol, Sequence, TypeVar

import numpy as np
from tqdm.contrib.logging import logging_redirect_tqdm

from contract.imaging import ImageReadError, preprocess, read_image
from contract.kinds import Prediction, Size, spec_of
from contract.manifest import Preprocessing, TaskEntry
from inference.engines.fallback import Engine
from inference.errors import EngineError, describe
from inference.engines.infer import infer_batch
from inference.outputs.writers import OutputGuard, write_mask

log = logging.getLogger(__name__)

#: Items grouped by task at a time: what the pipeline holds of a stream, whatever its length. A window
#: ends each task's last batch early, so it costs at most one short batch per task per window.
WINDOW = 4096


class WorkItem(Protocol):
    """One image to predict: its file, its task and, for segmentation, where its mask goes."""

    @property
    def image_file(self) -> Path: ...

    @property
    def task(self) -> TaskEntry: ...

    @property
    def mask_target(self) -> Path | None: ...


Item = TypeVar("Item", bound=WorkItem)


class Sink(Protocol[Item]):
    """Where results go: a JSON-kind prediction, a written mask, or a failure with its reason."""

    def predicted(self, item: Item, prediction: Prediction) -> None: ...

    def mask_written(self, item: Item) -> None: ...

    def failed(self, item: Item, reason: str, size: Size | None) -> None: ...

    # Optional: ``batch_done(self) -> None``, called after each batch (a checkpoint, a journal flush).


@dataclass(frozen=True)
class Batch(Generic[Item]):
    items: list[Item]

    @property
    def task(self) -> TaskEntry:
        return self.items[0].task


def make_batches(items: Sequence[Item], batch_size: int) -> list[Batch[Item]]:
    """Group by task id (first appearance order), then cut each group into batches."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.task.task_id, []).append(item)
    return [Batch(group[i:i + batch_size]) for group in groups.values() for i in range(0, len(group), batch_size)]


def stream_batches(items: Iterable[Item], batch_size: int, window: int) -> Iterator[Batch[Item]]:
    """``make_batches`` over consecutive windows of ``window`` items: batches as they are needed."""
    source = iter(items)
    while chunk := list(islice(source, window)):
        yield from make_batches(chunk, batch_size)


def _load(item: WorkItem, prep: Preprocessing) -> tuple[np.ndarray, Size, float]:
    """Worker: read and preprocess one image (the full-size array is dropped here); also the seconds it took."""
    started = time.perf_counter()
    image = read_image(item.image_file)
    return preprocess([image], prep)[0], (image.shape[0], image.shape[1]), time.perf_counter() - started


def _finish_mask(target: Path, task: TaskEntry, logits: np.ndarray, size: Size, guard: OutputGuard | None) -> float:
    """Worker: logits at the model's size -> native-size mask (postprocessed as the manifest says) -> PNG,
    written atomically (inside ``guard``); returns the seconds it took."""
    started = time.perf_counter()
    write_mask(target, task.decode(logits, size).mask, guard)
    return time.perf_counter() - started


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="predicting", unit="img", file=sys.stderr, disable=None, dynamic_ncols=True)


class ProgressLog:
    """Without a terminal (a container's log, a CI job) tqdm draws nothing: one INFO line every ``every`` seconds."""

    def __init__(self, total: int, enabled: bool, every: float = 30.0):
        self.total, self.enabled, self.every = total, enabled, every
        self.started = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < self.every:
            return
        self.last = now
        rate = done / (now - self.started) if now > self.started else 0.0
        left = (self.total - done) / rate if rate > 0 else float("nan")
        log.info("progress: %d of %d images (%.0f %%), %.1f images/s, about %.0f s left", done, self.total,
                 100.0 * done / max(self.total, 1), rate, left)


class Pipeline(Generic[Item]):
    def __init__(self, engine: Engine, prep: Preprocessing, sink: Sink[Item], batch_size: int = 8,
                 workers: int = 2, prefetch: int = 2, max_pending: int = 64, guard: OutputGuard | None = None,
                 should_stop: Callable[[], bool] | None = None, window: int | None = None):
        self.engine, self.prep, self.sink, self.guard = engine, prep, sink, guard
        self.should_stop = should_stop or (lambda: False)
        self.progress_every = 30.0  # seconds between progress lines when stderr is not a terminal
        self.stopped = False  # True when should_stop ended the run early (the rest was not attempted)
        self.attempted = 0  # items of the batches run
        self.batch_size, self.workers = max(1, batch_size), max(1, workers)
        self.prefetch, self.max_pending = max(1, prefetch), max(1, max_pending)
        self.window = max(self.batch_size, window or WINDOW)
        self.seconds = 0.0
        #: seconds per stage, summed over the threads that ran it: read (decode + preprocess), model, write
        #: (JSON records decoded, masks resized, encoded and written); workers overlap, so the sum may exceed the wall
        self.stage_seconds = {"read": 0.0, "model": 0.0, "write": 0.0}
        self._settled = 0  # items settled outside the pipeline since the last progress update (``settled``)

    def settled(self, count: int = 1) -> None:
        """Count ``count`` items of the progress ``total`` that were settled without the model (failed, resumed)."""
        self._settled += count

    def run(self, items: Iterable[Item], total: int | None = None) -> None:
        """Predict every item; ``total``: the progress bar's length (default ``len(items)``)."""
        started = time.perf_counter()
        total = len(items) if total is None else total  # type: ignore[arg-type]
        # log lines during the loop go through tqdm.write, so they never land inside the progress bar line
        with logging_redirect_tqdm(), ThreadPoolExecutor(self.workers, thread_name_prefix="io") as pool, \
                _progress(total) as bar:
            upcoming: Iterator[Batch[Item]] = stream_batches(items, self.batch_size, self.window)
            loading: deque[tuple[Batch[Item], list[Future]]] = deque()
            writing: deque[tuple[Item, Future]] = deque()

            def load_next() -> None:
                batch = next(upcoming, None)
                if batch is not None:
                    loading.append((batch, [pool.submit(_load, item, self.prep) for item in batch.items]))

            for _ in range(self.prefetch):
                load_next()
            first = True
            batch_done = getattr(self.sink, "batch_done", None)
            progress_log = ProgressLog(total, enabled=bool(bar.disable), every=self.progress_every)
            done = 0
            while loading:
                if self.should_stop():
                    self.stopped = True
                    for _, futures in loading:
                        for future in futures:
                            future.cancel()
                    break
                batch, futures = loading.popleft()
                load_next()
                self._run_batch(batch, futures, pool, writing)
                self._log_batch(batch, first)
                first = False
                self.attempted += len(batch.items)
                bar.update(len(batch.items) + self._settled)
                done += len(batch.items) + self._settled
                self._settled = 0
                progress_log.update(done)
                while len(writing) > self.max_pending:
                    self._collect(*writing.popleft())
                if batch_done is not None:
                    batch_done()
            while writing:
                self._collect(*writing.popleft())
            bar.update(self._settled)  # items settled after the last batch
            self._settled = 0
        self.seconds = time.perf_counter() - started

    @staticmethod
    def _log_batch(batch: Batch, first: bool) -> None:
        """Timestamps the benchmark reads (benchmarks.measure, which runs with -v): first results, then each batch."""
        now = time.time()
        if first:
            log.debug("first predictions ready at unix time %.6f", now)
        log.debug("batch done: %s %s %d images at unix time %.6f", batch.task.task_id, batch.task.kind.value,
                  len(batch.items), now)

    def _run_batch(self, batch: Batch[Item], futures: list[Future], pool: ThreadPoolExecutor,
                   writing: deque[tuple[Item, Future]]) -> None:
        ready: list[tuple[Item, np.ndarray, Size]] = []
        for item, future in zip(batch.items, futures):
            try:
                tensor, size, seconds = future.result()
                self.stage_seconds["read"] += seconds
                ready.append((item, tensor, size))
            except (ImageReadError, OSError, ValueError) as exc:
                self.sink.failed(item, str(exc), None)
            except Exception as exc:  # a fault of this image alone (MemoryError, cv2.error, ...): its row only
                self.sink.failed(item, f"cannot read or preprocess the image: {describe(exc)}", None)
        if not ready:
            return
        task = batch.task
        started = time.perf_counter()
        try:
            output = infer_batch(self.engine, task, np.stack([tensor for _, tensor, _ in ready]))
        except EngineError as exc:
            for item, _, size in ready:
                self.sink.failed(item, f"model failed: {exc}", size)
            return
        except MemoryError as exc:  # this batch's rows only; the next batch may fit
            for item, _, size in ready:
                self.sink.failed(item, f"model failed: {describe(exc)}", size)
            return
        decoding = time.perf_counter()
        self.stage_seconds["model"] += decoding - started
        for i, (item, _, size) in enumerate(ready):
            if spec_of(task.kind).writes_mask:
                writing.append((item, pool.submit(_finish_mask, item.mask_target, task, output[i], size, self.guard)))
                continue
            try:
                prediction = task.decode(output[i], size)
            except ValueError as exc:
                self.sink.failed(item, f"invalid model output: {exc}", size)
                continue
            except Exception as exc:  # a fault of this row alone (MemoryError, cv2.error, ...)
                self.sink.failed(item, f"cannot decode the model output: {describe(exc)}", size)
                continue
            self.sink.predicted(item, prediction)
        self.stage_seconds["write"] += time.perf_counter() - decoding

    def _collect(self, item: Item, future: Future) -> None:
        try:
            self.stage_seconds["write"] += future.result()
        except (OSError, ValueError) as exc:
            self.sink.failed(item, f"mask not written: {exc}", None)
            return
        except Exception as exc:  # a fault of this mask alone (MemoryError, cv2.error, ...)
            self.sink.failed(item, f"mask not written: {describe(exc)}", None)
            return
        self.sink.mask_written(item)
