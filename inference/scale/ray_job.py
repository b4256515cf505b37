"""``python -m inference ray``: the batch layout on a Ray cluster, the model in an actor pool.

    python -m inference ray --input IN --output OUT --actors 2 [--gpus-per-actor 1]

The driver reads and checks the CSV rows exactly as ``python -m inference`` does
(``inference.layouts.batch_rows``); the rows the model can predict become a Ray Dataset, and
``map_batches`` runs them through a pool of ``--actors`` actors (``concurrency=``), each
holding one loaded model (``inference.api``): one per GPU with ``--gpus-per-actor 1``, or
CPU actors. Actors read the images and write the masks themselves (the CLI's writer);
the JSON records stream back to the driver, which writes the three JSON files with the
CLI's code (``inference.outputs.results``), fallback predictions for failed rows included. The
output equals a single ``python -m inference`` run, byte for byte.

Ray is an optional dependency: ``pip install -r requirements-ray.txt``. Without
``--address`` (or ``$RAY_ADDRESS``) a local Ray instance is started; on a multi-node
cluster the input and output folders must be the same shared paths on every node, and
this repository importable there (``PYTHONPATH`` is passed to the actors).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from contract.imaging import ImageReadError, read_image
from contract.kinds import Prediction, spec_of
from contract.manifest import ModelFolder
from inference.errors import EXIT_FATAL, EXIT_OK, EXIT_ROWS_FAILED, EngineError, FatalError

log = logging.getLogger("inference.scale.ray_job")
REPO = Path(__file__).resolve().parents[2]
NO_SIZE = -1


class RowPredictor:
    """Ray actor: one model per actor; a batch of rows -> one status per row (``__call__``)."""

    def __init__(self, model_dir: str, engine: str, device: str, precision: str, threads: int, batch_size: int,
                 tta: str = "auto", expected_images: int | None = None):
        from inference.api import load

        self.model = load(model_dir, device=device, precision=precision, engine=engine, threads=threads,
                          batch_size=batch_size, tta=tta, expected_images=expected_images)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(batch["index"])
        status, payload = ["failed"] * count, [""] * count
        heights, widths = [NO_SIZE] * count, [NO_SIZE] * count
        groups: dict[str, list[tuple[int, np.ndarray]]] = {}
        for i in range(count):
            try:
                image = read_image(Path(str(batch["image_file"][i])))
            except (ImageReadError, OSError) as exc:
                payload[i] = str(exc)
                continue
            heights[i], widths[i] = image.shape[:2]
            groups.setdefault(str(batch["task_id"][i]), []).append((i, image))
        for task_id, members in groups.items():
            self._predict(task_id, members, batch, status, payload)
        return {"index": batch["index"], "status": np.array(status), "payload": np.array(payload, dtype=object),
                "height": np.array(heights), "width": np.array(widths)}

    def _predict(self, task_id: str, members: list[tuple[int, np.ndarray]], batch: dict[str, np.ndarray],
                 status: list[str], payload: list[str]) -> None:
        from inference.outputs.writers import write_mask

        try:
            results = self.model.predict([image for _, image in members], [task_id] * len(members))
        except EngineError as exc:
            for i, _ in members:
                payload[i] = f"model failed: {exc}"
            return
        except ValueError as exc:
            for i, _ in members:
                payload[i] = f"invalid model output: {exc}"
            return
        for (i, _), result in zip(members, results):
            if "mask" in result:
                try:
                    write_mask(Path(str(batch["mask_target"][i])), result.pop("mask"))
                except (OSError, ValueError) as exc:
                    payload[i] = f"mask not written: {exc}"
                    continue
                status[i] = "mask"
            else:
                del result["task_id"]
                status[i], payload[i] = "record", json.dumps(result)


def predict_rows(options, folder: ModelFolder, actors: int, gpus_per_actor: float, cpus_per_actor: float):
    """Every row of the input through the actor pool; returns the layout's ``RunSummary``."""
    import ray

    from inference.layouts.batch import RowSink, read_input_rows
    from inference.layouts.batch_jobs import check_rows
    from inference.options import RunSummary
    from inference.bookkeeping.record_spool import RecordSpool
    from inference.outputs.results import Results
    from inference.outputs.writers import OutputGuard

    manifest = folder.manifest
    rows = read_input_rows(options.input_dir)
    guard = OutputGuard(options.output_dir, options.input_dir)
    results = Results(strict=options.strict, spool=RecordSpool(guard.root, "ray"))
    sink = RowSink(results, tuple(manifest.model.preprocessing.input_size))
    jobs = {job.row.index: job for job in check_rows(rows, folder, guard, results)}
    started = time.perf_counter()
    if jobs:
        items = [{"index": i, "image_file": str(job.image_file), "task_id": job.task.task_id,
                  "mask_target": str(job.mask_target or "")} for i, job in jobs.items()]
        threads = options.threads or max(1, int(cpus_per_actor))
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts rows (mininterval 2 s)
        dataset = ray.data.from_items(items).map_batches(
            RowPredictor, batch_size=options.batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor,
            fn_constructor_kwargs={"model_dir": str(folder.path), "engine": options.engine,
                                   "device": options.device, "precision": options.precision,
                                   "threads": threads, "batch_size": options.batch_size, "tta": options.tta,
                                   "expected_images": len(rows)},  # --precision auto decides as one run does
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}},
        )
        _collect(dataset, jobs, sink)
    try:
        results.write_json(options.output_dir)
    finally:
        results.spool.close()
    return RunSummary(layout="batch (Ray)", rows=len(rows), predicted=results.predicted,
                      failed=results.failed + len(rows.problems), fallbacks=results.fallbacks,
                      engine=f"Ray {ray.__version__}, {actors} actors", seconds=time.perf_counter() - started)


def _collect(dataset, jobs: dict[int, Any], sink) -> None:
    """Stream the actors' answers into the sink (records, masks written, failures) with a progress bar."""
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc="predicting", unit="img", file=sys.stderr, disable=None, mininterval=2.0) as bar:
        for answer in dataset.iter_rows():
            job = jobs[int(answer["index"])]
            status, payload = str(answer["status"]), answer["payload"]
            if status == "record":
                record_type = spec_of(job.task.kind).record_type
                sink.predicted(job, Prediction(job.task.kind, fields=json.loads(payload), record_type=record_type))
            elif status == "mask":
                sink.mask_written(job)
            else:
                height, width = int(answer["height"]), int(answer["width"])
                sink.failed(job, str(payload), None if height == NO_SIZE else (height, width))
            bar.update(1)


def run_ray(args: argparse.Namespace) -> int:
    """``python -m inference ray`` (its arguments: ``inference.scale.commands``); the exit code."""
    logging.basicConfig(level=logging.INFO, format="inference ray: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        import ray
    except ImportError:
        log.error("Ray is not installed; pip install -r requirements-ray.txt (or use python -m inference --shard I/N)")
        return EXIT_FATAL
    from inference.bookkeeping.lock import Holder
    from inference.options import RunOptions
    from inference.startup import check_folders, claim_output, open_model

    try:
        check_folders(args.input, args.output)
        folder = open_model(args.weights, require_graphs=True)
        if not ray.is_initialized():
            ray.init(address=args.address, include_dashboard=False, logging_level=logging.WARNING)
        options = RunOptions(input_dir=args.input, output_dir=args.output, engine=args.engine, device=args.device,
                             precision=args.precision, threads=args.threads, batch_size=args.batch_size,
                             strict=args.strict, tta=args.tta)
        with claim_output(args.output, Holder("Ray job")):
            summary = predict_rows(options, folder, args.actors, args.gpus_per_actor, args.cpus_per_actor)
    except FatalError as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    for line in summary.lines():
        log.info("%s", line)
    return EXIT_ROWS_FAILED if summary.failed else EXIT_OK

