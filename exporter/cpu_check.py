"""The CPU variants' accuracy check: each variant's outputs against fp32 on held-out images, in the manifest.

    python -m exporter.cpu_check MODEL_DIR [--images LABELLED_DIR] [--per-task 4] [--variant bf16]

For each CPU variant (``inference.engines.cpu_variants``) that can run on this machine, the
runtime's batch layout predicts the same held-out images twice, at fp32 (ONNX Runtime, today's
path) and with the variant, into two scratch folders; the outputs are compared the way a user
reads them (``exporter.cpu_compare``): every mask >= 99 % equal pixels, probabilities within
1e-2, boxes and points within 1 px, and, when the images are labelled, the official metrics
(``evaluation.evaluate_official``, kind means) within 0.005 (Hausdorff distance and MRE, which are
in pixels: within 1 px). Model time per image of both is measured side by side (alternating
rounds) for the speed-up and the variant's start-up cost that ``--precision auto`` weighs.

The result goes into ``manifest.json`` (``cpu_variants``, rewritten atomically; the graphs are
untouched): passed or not, the figures, the tolerances, the first failures. A variant that passed
for some kind also gets its graphs compiled into the folder (``exporter.cpu_compiled``), which
runs on a like machine import instead of compiling. ``--precision auto``
never chooses a variant whose check failed or is absent.

Held-out images: ``--images DIR`` (a folder in the challenge layout; labelled for the metrics), else
phantoms made for the check (``python -m phantoms``, seed 7: the held-out seed, never trained on) for
the model's tasks that phantoms know. Exit status: 0 when every variant checked passed, 1 when one
failed or none could run here, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import tempfile
import time
from pathlib import Path

from contract.manifest import CpuVariantCheck, ModelFolder, write_manifest
from exporter.cpu_compare import TOLERANCES, compare_outputs
from exporter.cpu_compiled import write_compiled
from exporter.cpu_timing import measure_speed
from inference.engines.cpu_variants import VARIANTS, cpu_name, unavailable_reason
from inference.engines.openvino_runner import openvino_version
from inference.engines.runner import default_threads
from inference.errors import EngineError

log = logging.getLogger(__name__)

HELD_OUT_SEED = 7


def held_out_images(folder: ModelFolder, scratch: Path, per_task: int, seed: int = HELD_OUT_SEED) -> Path:
    """Labelled phantoms of the model's tasks that phantoms can draw, in the challenge layout."""
    from contract.tasks import TaskRegistry
    from phantoms.generate import generate_dataset

    official = {t.task_id for t in TaskRegistry.official()}
    tasks = [t.task_id for t in folder.manifest.tasks if t.task_id in official]
    if not tasks:
        raise ValueError(f"{folder.path}: none of the model's tasks has phantoms; pass --images DIR (a labelled "
                         "folder in the challenge layout)")
    return generate_dataset(scratch / "images", seed, {t: per_task for t in tasks}, labels=True, progress=False)


def _predict(input_dir: Path, model_dir: Path, output_dir: Path, precision: str, threads: int) -> float:
    """The runtime's batch layout on ``input_dir`` at ``precision`` (fresh model folder and engine); seconds."""
    from inference.layouts import batch
    from inference.options import RunOptions

    folder = ModelFolder.open(model_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options = RunOptions(input_dir=input_dir, output_dir=output_dir, device="cpu", precision=precision,
                         threads=threads, strict=True)
    started = time.perf_counter()
    summary = batch.run(options, folder)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} rows failed at {precision}; see the log above")
    if precision != "fp32" and ("OpenVINO" not in summary.engine or "variant left" in summary.engine):
        raise RuntimeError(f"the run did not use {precision}: {summary.engine}")
    return time.perf_counter() - started


def check_variant(model_dir: Path, name: str, images: Path, scratch: Path, threads: int) -> CpuVariantCheck:
    """Run ``name`` and fp32 on ``images``, compare, time; the manifest's record of the result."""
    variant = VARIANTS[name]
    started = time.perf_counter()
    reason = unavailable_reason(variant, threads)  # the crash probe, as a run pays it
    probe_s = time.perf_counter() - started
    if reason is not None:
        raise RuntimeError(reason)
    fp32_dir, variant_dir = scratch / "fp32", scratch / name
    _predict(images, model_dir, fp32_dir, "fp32", threads)
    _predict(images, model_dir, variant_dir, name, threads)
    comparison = compare_outputs(images, fp32_dir, variant_dir)
    speed = measure_speed(ModelFolder.open(model_dir), name, images, threads)
    return CpuVariantCheck(
        graph_set=variant.graph_set,
        runtime=f"openvino {openvino_version()} CPU, inference precision {variant.hint}",
        passed=comparison.passed, kinds_passed=comparison.kinds_passed, images=comparison.images, figures=comparison.figures,
        tolerances=dict(TOLERANCES), failures=comparison.failures[:10], speedup=round(speed.speedup, 3),
        fp32_ms_per_image=round(speed.fp32_ms_per_image, 2), startup_s=round(probe_s + speed.startup_s, 2),
        cpu=cpu_name(), checked=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def record_cpu_checks(model_dir: Path, images: Path | None = None, per_task: int = 4,
                      variants: list[str] | None = None, threads: int | None = None) -> dict[str, CpuVariantCheck]:
    """Check each variant that can run here and record the results in ``model_dir``'s manifest.

    Variants that cannot run on this machine are skipped (logged): nothing is recorded for them, so
    ``--precision auto`` will not use them. Returns the recorded checks."""
    threads = threads or default_threads()
    folder = ModelFolder.open(Path(model_dir), verify_hashes=True)
    recorded: dict[str, CpuVariantCheck] = {}
    with tempfile.TemporaryDirectory(prefix="cpu-check-") as tmp:
        scratch = Path(tmp)
        inputs = images or held_out_images(folder, scratch, per_task)
        for name in variants or list(VARIANTS):
            try:
                check = check_variant(folder.path, name, Path(inputs), scratch / name, threads)
            except RuntimeError as exc:
                log.warning("CPU variant %s not checked (nothing recorded): %s", name, exc)
                continue
            if check.usable_kinds():  # runs will import the graphs compiled here instead of compiling them
                try:
                    compiled, saved_s = write_compiled(folder, name, threads)
                    startup = None if check.startup_s is None else round(max(0.0, check.startup_s - saved_s), 2)
                    check = check.model_copy(update={"compiled": compiled, "startup_s": startup})
                except (EngineError, RuntimeError, OSError) as exc:
                    log.warning("CPU variant %s: compiled graphs not kept (runs compile the ONNX files): %s", name, exc)
            recorded[name] = check
            verdict = "passed" if check.passed else f"FAILED (passed: {', '.join(check.kinds_passed or []) or 'no kind'})"
            log.info("CPU variant %s %s on %d images (%.2fx fp32's model speed): %s", name, verdict, check.images,
                     check.speedup or 0.0, ", ".join(f"{k} {v:.4g}" for k, v in check.figures.items()))
            for failure in check.failures[:5]:
                log.info("  %s", failure)
    if recorded:
        checks = {**(folder.manifest.cpu_variants or {}), **recorded}
        write_manifest(folder.manifest.model_copy(update={"cpu_variants": checks}), folder.path)
        ModelFolder.open(folder.path)  # the written manifest validates
    return recorded


def check_after_export(model_dir: Path, images: Path | None = None) -> int:
    """``export.py --check-cpu [--check-images DIR]``: the check on the folder just written; prints the verdicts.

    Exit status 0 even when a variant failed (the export itself succeeded; the manifest says the
    variant is not to be used) or none can run here; 2 when the check itself cannot be made."""
    try:
        recorded = record_cpu_checks(Path(model_dir), images)
    except (ValueError, OSError) as exc:
        print(f"export.py: error: CPU check: {exc}", file=sys.stderr)
        return 2
    if not recorded:
        print("  CPU variants: none can run on this machine; nothing recorded (fp32 stays the CPU path)")
    for name, check in recorded.items():
        kinds = ", ".join(check.kinds_passed or []) or "none"
        print(f"  CPU variant {name}: {'passed' if check.passed else 'failed'} on {check.images} held-out images "
              f"(kinds that passed: {kinds}; {check.speedup or 0.0:.2f}x fp32's model speed)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m exporter.cpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="an exported model folder (manifest.json + graphs)")
    p.add_argument("--images", type=Path, default=None,
                   help="held-out images in the challenge layout (labelled: the official metrics are compared too); "
                   "default: labelled phantoms of seed 7")
    p.add_argument("--per-task", type=int, default=4, help="phantoms per task when --images is not given (default 4)")
    p.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="only this variant (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    quiet = {"inference": logging.WARNING, "inference.engines.cpu_variants": logging.ERROR}  # "never checked": the check
    before = {name: logging.getLogger(name).level for name in quiet}
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    try:
        return _check(args)
    finally:  # the runtime's own logging as it was (a caller in the same process keeps its INFO lines)
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def _check(args: argparse.Namespace) -> int:
    if args.per_task < 1:
        print("error: --per-task must be at least 1", file=sys.stderr)
        return 2
    if args.images is not None and not (args.images / "csv_files").is_dir():
        print(f"error: {args.images} has no csv_files/ folder (the challenge layout)", file=sys.stderr)
        return 2
    try:
        recorded = record_cpu_checks(args.model_dir, args.images, args.per_task, args.variant, args.threads)
    except (ValueError, OSError) as exc:  # ManifestError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not recorded:
        print("no CPU variant could be checked on this machine; nothing recorded", file=sys.stderr)
        return 1
    for name, check in recorded.items():
        verdict = "passed" if check.passed else f"FAILED; kinds that passed: {', '.join(check.kinds_passed or []) or 'none'}"
        print(f"{name}: {verdict} ({check.images} images, {check.speedup or 0.0:.2f}x fp32's model speed)")
    return 0 if all(c.passed for c in recorded.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
