"""The challenge's batch layout (``INPUT/csv_files/*.csv``): every row predicted, outputs written."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from contract.csv_layout import CSV_FOLDER
from contract.imaging import image_size
from contract.kinds import PREDICTION_FILES, Prediction, Size, spec_of
from contract.manifest import ModelFolder
from inference.layouts.batch_jobs import JobStream
from inference.layouts.batch_rows import InputRows, Job, Row, RowFailure
from inference.bookkeeping.lock import Holder
from inference.engines.factory import make_engine
from inference.engines.fallback import RunEngine
from inference.errors import FatalError, RunInterrupted
from inference.bookkeeping.journal import Journal, fingerprint, row_key
from inference.options import RunOptions, RunSummary
from inference.bookkeeping.output_audit import audit_outputs
from inference.layouts.pipeline import Pipeline
from inference.bookkeeping.record_spool import RecordSpool
from inference.outputs.results import Results
from inference.bookkeeping.signals import interrupted_message, stop_requested
from inference.outputs.writers import OutputGuard
from inference.startup import claim_output

if TYPE_CHECKING:
    from inference.scale.shard import ShardRows

log = logging.getLogger(__name__)

NAME = "batch"


def detect(input_dir: Path) -> bool:
    return (Path(input_dir) / CSV_FOLDER).is_dir()


class RowSink:
    """The pipeline's results, row by row, into ``Results`` (failures with their fallback prediction)
    and, once a row's outputs are in place, into the journal; JSON checkpoints between batches."""

    def __init__(self, results: Results, default_size: Size, journal: Journal | None = None,
                 checkpoints: bool = True):
        self.results, self.default_size, self.journal = results, default_size, journal
        self.checkpoints = checkpoints  # JSON files rewritten between batches (not for a shard: merge writes them)
        self.unsettled = 0  # failed rows whose fallback could not be written (not journaled: retried)

    def predicted(self, job: Job, prediction: Prediction) -> None:
        payload = self.results.add(job.row, prediction)
        if self.journal is not None:
            self.journal.add(row_key(job.row), job.task.kind.value, record=payload, image=job.stamp)

    def mask_written(self, job: Job) -> None:
        self.results.mask_written(job.row, job.mask_target)
        if self.journal is not None:
            self.journal.add(row_key(job.row), job.task.kind.value, image=job.stamp)

    def failed(self, job: Job, reason: str, size: Size | None) -> None:
        failure = RowFailure(job.row, reason, job.task.kind, job.task.num_classes, job.mask_target)
        if size is None and spec_of(job.task.kind).fallback_sized:
            size = image_size(job.row.image_file)
        outcome = self.results.fail(failure, size, self.default_size)
        if not outcome.settled:
            self.unsettled += 1
        elif self.journal is not None:
            self.journal.add(row_key(job.row), job.task.kind.value, record=outcome.record, failed=reason,
                             fallback=outcome.fallback, image=job.stamp)

    def batch_done(self) -> None:
        if self.journal is not None:
            self.journal.flush()
            if self.checkpoints and self.journal.checkpoint_due():
                started = time.monotonic()
                self.results.write_json(self.results.guard.root, level=logging.WARNING)
                self.journal.checkpoint_done(time.monotonic() - started)


def read_input_rows(input_dir: Path) -> InputRows:
    """The input's rows, streamed (``InputRows``); the problems of whole CSV files are logged here.

    FatalError when there is no row at all."""
    rows = InputRows.scan(input_dir)
    for problem in rows.problems:
        log.error("%s", problem)
    if not len(rows):
        raise FatalError(f"no data rows in {Path(input_dir) / CSV_FOLDER}/*.csv; nothing to predict")
    return rows


def run(options: RunOptions, folder: ModelFolder) -> RunSummary:
    """Every row predicted and written. What can fail for the whole run (the input, the engine: device,
    precision, the graphs every task needs) is checked before the output folder is touched."""
    all_rows = read_input_rows(options.input_dir)
    rows = _shard_rows(all_rows, options)
    engine = make_engine(folder, options.engine, options.device, options.precision, options.threads, options.tta,
                         verify_hashes=options.verify_hashes, expected_images=len(rows))
    engine.start()
    header = fingerprint(options.input_dir, folder, options)
    with claim_output(options.output_dir, _holder(options, header)):
        return _predict(options, folder, engine, all_rows, rows, header)


def _holder(options: RunOptions, header: dict) -> Holder:
    """A whole run holds the output folder alone; the shards of one job (same N and fingerprint) share it."""
    if options.shard is None:
        return Holder("run")
    job = hashlib.sha256(json.dumps([header, options.shard.count], sort_keys=True).encode()).hexdigest()[:12]
    return Holder(f"shard {options.shard}", tag=options.shard.tag, job=job)


def _predict(options: RunOptions, folder: ModelFolder, engine: RunEngine, all_rows: InputRows,
             rows: "InputRows | ShardRows", header: dict) -> RunSummary:
    manifest = folder.manifest
    tag = options.shard.tag if options.shard is not None else None
    guard = OutputGuard(options.output_dir, options.input_dir)
    journal = Journal.start(guard.root, header, options.resume, tag=tag)
    results = Results(strict=options.strict, guard=guard, spool=RecordSpool(guard.root, tag))
    default_size = tuple(manifest.model.preprocessing.input_size)
    sink = RowSink(results, default_size, journal, checkpoints=options.shard is None)
    pipeline = Pipeline(engine, manifest.model.preprocessing, sink, options.batch_size,
                        options.workers, guard=guard, should_stop=stop_requested)
    jobs = JobStream(all_rows, folder, guard, results, journal, mine=_mine(options))
    jobs.on_settled = pipeline.settled
    try:
        pipeline.run(jobs, total=len(rows))
        journal.flush()  # the last batches' rows (their masks collected after the last batch) before the final write
        unwritten = _write_outputs(options, folder, engine, all_rows, rows, results)
    finally:
        results.spool.close()
    journal.close(finished=not (pipeline.stopped or unwritten or sink.unsettled))
    guard.close()
    if jobs.changed:
        log.info("--resume: %d row(s) predicted again because their image changed", jobs.changed)
    if pipeline.stopped:
        raise RunInterrupted(interrupted_message(len(rows), jobs.settled + pipeline.attempted, len(unwritten)))
    if unwritten or sink.unsettled:
        log.error("%d output file(s) and %d row(s) could not be written; once the cause is fixed, run the same "
                  "command with --resume to write them", len(unwritten), sink.unsettled)
    written = results.masks  # the masks in place, and the JSON files of a whole run written complete
    for name in PREDICTION_FILES.values() if options.shard is None else ():
        if name not in results.json_failed:
            written.add(guard.root / name)
        elif name in results.json_on_disk:
            log.error("%s in %s is an earlier checkpoint, not this run's result: it lists %d of the %d records it "
                      "should; it is complete once --resume writes it", name, options.output_dir,
                      results.json_on_disk[name], results.json_failed[name])
        elif (guard.root / name).exists():
            log.error("%s in %s is left from the interrupted run this one resumed, not this run's result; it is "
                      "complete once --resume writes it", name, options.output_dir)
    if options.biometry and options.shard is None and not unwritten:
        from inference.outputs.biometry import write_biometry

        files, problem = write_biometry(options.input_dir, guard.root)
        for path in files:
            written.add(path)
        unwritten += [problem] if problem else []
    # a shard shares its folder with the other shards' masks and parts: only the whole run is audited
    outputs = audit_outputs(options.output_dir, written, warn_stale=options.shard is None)
    if results.json_failed and options.shard is None:
        outputs += (f"; NOT complete: {len(results.json_failed)} JSON file(s) not written "
                    f"({', '.join(results.json_failed)}), run the same command with --resume once the cause is fixed")
    problems = len(all_rows.problems)
    return RunSummary(
        layout=NAME, rows=len(rows), predicted=results.predicted,
        failed=results.failed + problems + len(unwritten), fallbacks=results.fallbacks,
        engine=engine.description, seconds=pipeline.seconds, outputs=outputs,
        kinds={task.task_id: task.kind.value for task in manifest.tasks}, unserved=results.unserved,
        stages=pipeline.stage_seconds, load_seconds=getattr(engine, "load_seconds", 0.0),
    )


def _mine(options: RunOptions) -> "Callable[[Row], bool] | None":
    """A shard's rows (``inference.scale.shard``); None: every row."""
    if options.shard is None:
        return None
    from inference.scale.shard import shard_of

    shard = options.shard
    return lambda row: shard_of(row, shard.count) == shard.index


def _shard_rows(rows: InputRows, options: RunOptions) -> InputRows | ShardRows:
    """All rows, or only those of ``--shard I/N`` (``inference.scale.shard``)."""
    if options.shard is None:
        return rows
    from inference.scale.shard import ShardRows

    return ShardRows(rows, options.shard)


def _write_outputs(options: RunOptions, folder: ModelFolder, engine: RunEngine, all_rows: InputRows,
                   rows: "InputRows | ShardRows", results: Results) -> list[str]:
    """The three JSON files; or, for a shard, its part file (``python -m inference merge`` joins them).

    Returns one line per file that could not be written."""
    if options.shard is None:
        return results.write_json(options.output_dir)
    from inference.scale.shard import write_part

    try:
        write_part(options.output_dir, all_rows, rows, results, folder, _part_settings(options, engine))
    except OSError as exc:
        log.error("shard part file not written: %s", exc)
        return [str(exc)]
    return []


def _part_settings(options: RunOptions, engine: RunEngine) -> dict:
    """What a shard's part records of how its numbers were made (merge refuses a mix): engine, precision and TTA
    as resolved, and strict."""
    return {**engine.settings, "strict": options.strict}
