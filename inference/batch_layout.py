"""The challenge's batch layout (``INPUT/csv_files/*.csv``): every row predicted, outputs written."""

from __future__ import annotations

import logging
from pathlib import Path

from contract.csv_layout import CSV_FOLDER
from contract.imaging import image_size
from contract.kinds import Prediction, Size
from contract.manifest import ModelFolder
from contract.tasks import TaskKind
from inference.ensemble import make_engine
from inference.batch_csv import Job, RowFailure, check_row, read_rows
from inference.errors import FatalError
from inference.layouts import RunOptions, RunSummary
from inference.pipeline import Pipeline
from inference.results import Results
from inference.writers import OutputGuard

log = logging.getLogger(__name__)

NAME = "batch"


def detect(input_dir: Path) -> bool:
    return (Path(input_dir) / CSV_FOLDER).is_dir()


class RowSink:
    """The pipeline's results, row by row, into ``Results`` (failures with their fallback prediction)."""

    def __init__(self, results: Results, default_size: Size):
        self.results, self.default_size = results, default_size

    def predicted(self, job: Job, prediction: Prediction) -> None:
        self.results.add(job.row, prediction)

    def mask_written(self, job: Job) -> None:
        self.results.mask_written(job.row)

    def failed(self, job: Job, reason: str, size: Size | None) -> None:
        failure = RowFailure(job.row, reason, job.task.kind, job.task.num_classes, job.mask_target)
        if size is None and job.task.kind is not TaskKind.CLASSIFICATION:
            size = image_size(job.row.image_file)
        self.results.fail(failure, size, self.default_size)


def run(options: RunOptions, folder: ModelFolder) -> RunSummary:
    manifest = folder.manifest
    rows, problems = read_rows(options.input_dir)
    for problem in problems:
        log.error("%s", problem)
    if not rows:
        raise FatalError(f"no data rows in {options.input_dir / CSV_FOLDER}/*.csv; nothing to predict")
    guard = OutputGuard(options.output_dir, options.input_dir)
    jobs: list[Job] = []
    results = Results(strict=options.strict)
    default_size = tuple(manifest.model.preprocessing.input_size)
    for row in rows:
        checked = check_row(row, manifest, guard)
        if isinstance(checked, RowFailure):
            results.fail(checked, image_size(row.image_file), default_size)
        else:
            jobs.append(checked)
    engine = make_engine(folder, options.engine, options.device, options.precision, options.threads, options.tta)
    pipeline = Pipeline(engine, manifest.model.preprocessing, RowSink(results, default_size), options.batch_size,
                        options.workers)
    if jobs:
        pipeline.run(jobs)
    results.write_json(options.output_dir)
    return RunSummary(
        layout=NAME, rows=len(rows), predicted=results.predicted,
        failed=len(results.failed) + len(problems), fallbacks=results.fallbacks,
        engine=engine.description, seconds=pipeline.seconds,
    )
