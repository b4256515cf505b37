"""The challenge's batch layout (``INPUT/csv_files/*.csv``): every row predicted, outputs written."""

from __future__ import annotations

import logging
from pathlib import Path

from inference.backend import FallbackEngine
from inference.batch_csv import CSV_FOLDER, Job, RowFailure, check_row, read_rows
from inference.errors import FatalError
from inference.imaging import image_size
from inference.layouts import RunOptions, RunSummary
from inference.manifest import Manifest
from inference.output_audit import audit_outputs
from inference.pipeline import Pipeline
from inference.results import Results
from inference.writers import OutputGuard

log = logging.getLogger(__name__)

NAME = "batch"


def detect(input_dir: Path) -> bool:
    return (Path(input_dir) / CSV_FOLDER).is_dir()


def run(options: RunOptions, manifest: Manifest) -> RunSummary:
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
    engine = FallbackEngine(options.model_dir, manifest, options.engine, options.device, options.precision,
                            options.threads)
    pipeline = Pipeline(engine, manifest.model.preprocessing, results, options.batch_size, options.workers)
    if jobs:
        pipeline.run(jobs)
    written = results.write_json(options.output_dir)
    written += [j.mask_target for j in jobs if j.mask_target is not None]
    if not options.strict:
        written += [f.mask_target for f in results.failed if f.mask_target is not None]
    outputs = audit_outputs(options.output_dir, written)
    return RunSummary(
        layout=NAME, rows=len(rows), predicted=results.predicted,
        failed=len(results.failed) + len(problems), fallbacks=results.fallbacks,
        engine=engine.description, seconds=pipeline.seconds, outputs=outputs,
    )
