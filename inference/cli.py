"""``python -m inference``: arguments, logging, model folder, layout detection, exit codes.

Only the standard library is imported before the arguments are parsed, so ``--help``
is instant; heavy modules load when (and only if) they are needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from contract.defaults import DEVICES, ENGINES, PRECISIONS
from inference.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS_FAILED, FatalError, RunInterrupted

if TYPE_CHECKING:
    from inference.shard import Shard

log = logging.getLogger("inference")

OPT_ML_MODEL = Path("/opt/ml/model")
MODEL_DIR_ENV = "FMC_MODEL_DIR"
BAKED_MODEL_DIR = Path(__file__).resolve().parent.parent / "model_weights"

EPILOG = f"""\
model folder: --weights if given; else {OPT_ML_MODEL} when it holds manifest.json (a model
tarball uploaded to Grand-Challenge); else ${MODEL_DIR_ENV}; else the baked-in model_weights/.

failed rows (unreadable or missing image, unknown task, bad mask path, CSV disagreeing with
the model): one ERROR line each, naming the CSV line, the image and the reason. The row
still gets a fallback prediction (an empty mask, uniform probabilities with class 0, the
centred box [0.25, 0.25, 0.75, 0.75], keypoints at the image centre) unless --strict.

shards: --shard I/N predicts a deterministic 1/N of the rows and writes OUTPUT/shards/part-I-of-N.json;
python -m inference merge PARTS... --output OUT joins the parts into the files one run writes
(python -m inference merge --help).

exit codes:
  0  every row was predicted
  1  fatal error (no model, no CSV / nothing to do, missing input, unwritable output,
     another run on the same output folder); the message says what to fix
  2  usage error (bad arguments)
  3  some rows failed, or output files (each named on stderr with its reason, a full disk
     with the bytes needed); every other row was written
  4  stopped by SIGTERM/SIGINT: the current batch was finished and what is done written;
     run the same command with --resume to finish

failures and resuming: a fault of one image (unreadable, out of memory), one graph (its
file changed or damaged: checked against the manifest's sha256) or one output file (a full
disk) costs that row, task or file only. Finished rows are journaled in OUTPUT/.fmc-journal.jsonl;
after a kill, a stop or a crash, --resume predicts only the rest and ends with the same
outputs as an uninterrupted run. Without --resume a run starts afresh (the old journal and
JSON files removed). One run per output folder at a time (OUTPUT/.fmc-run.lock).
"""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference",
        description="Predict every row of an FMC_UIA input folder and write the files the evaluator reads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", type=Path, default=Path("/input"), help="input folder (default: /input)")
    parser.add_argument("--output", type=Path, default=Path("/output"), help="output folder (default: /output)")
    parser.add_argument("--weights", type=Path, default=None, help="model folder (manifest.json + ONNX graphs)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto: CUDA when it really works, else CPU (default)")
    parser.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                        help="graph set; auto: fp16 on CUDA when the model has it, else fp32")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="auto: ONNX Runtime, PyTorch on the same weights if it fails (default)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per model call (default: 8)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for the model (default: the cgroup CPU quota, else the CPU count)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="threads decoding images and writing masks (default: 2 to 4)")
    parser.add_argument("--strict", action="store_true", help="no fallback prediction for failed rows")
    parser.add_argument("--shard", default=os.environ.get("FMC_SHARD") or None, metavar="I/N",
                        help="predict only shard I of N (0 <= I < N; auto/N: I from $JOB_COMPLETION_INDEX) and "
                             "write OUTPUT/shards/part-I-of-N.json; join with: python -m inference merge "
                             "(default: $FMC_SHARD)")
    add_recovery_arguments(parser)
    parser.add_argument("--tta", choices=("auto", "none", "flip"), default="auto",
                        help="test-time augmentation: flip also runs each image's mirror and averages "
                        "(tasks whose flip rule is unsafe are never flipped); auto: what the manifest says (default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def add_recovery_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the fault-handling side (issue 14): resuming, graph hash checks."""
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted run in the same --output: rows its journal lists as done "
                             "are kept, the others predicted (see 'failures and resuming' below)")
    parser.add_argument("--no-verify-hashes", action="store_true",
                        help="do not check each graph file against the manifest's sha256 before its first use")


def check_graph_files(folder) -> None:
    """Missing graph files fail only the tasks that need them (logged here); none at all is fatal."""
    missing = folder.missing_graphs("fp32")
    graphs = folder.manifest.graph_set("fp32").graphs
    if len(missing) == len(graphs):
        raise FatalError(f"{folder.path}: none of the graphs listed in its manifest is there; re-export the model "
                         "(python export.py CHECKPOINT --out DIR) or pass --weights DIR")
    for name in missing:
        tasks = [t.task_id for t in folder.manifest.tasks if name in t.path]
        log.error("graph %s (%s) is missing from the model folder: the rows of %s will fail; re-export the model",
                  name, graphs[name].path, ", ".join(tasks) if len(tasks) < 4 else f"{len(tasks)} tasks")


def resolve_model_dir(weights: Path | None) -> tuple[Path, str]:
    """The model folder to use and where it came from (see EPILOG)."""
    if weights is not None:
        return weights, "--weights"
    # An uploaded model this process cannot read must stop the run, not fall back silently.
    readable = os.access(OPT_ML_MODEL, os.R_OK | os.X_OK) and (
        not (OPT_ML_MODEL / "manifest.json").exists() or os.access(OPT_ML_MODEL / "manifest.json", os.R_OK))
    if OPT_ML_MODEL.is_dir() and not readable:
        raise FatalError(f"model folder {OPT_ML_MODEL} is not readable for uid {os.getuid()}; "
                         "make it readable for all (chmod -R a+rX on the folder) before mounting it")
    if (OPT_ML_MODEL / "manifest.json").is_file():
        return OPT_ML_MODEL, f"{OPT_ML_MODEL} (uploaded model)"
    env = os.environ.get(MODEL_DIR_ENV, "").strip()
    if env:
        return Path(env), f"${MODEL_DIR_ENV}"
    return BAKED_MODEL_DIR, "baked-in model_weights/"


def _check_folders(input_dir: Path, output_dir: Path) -> None:
    from inference.writers import check_writable

    if not input_dir.is_dir():
        raise FatalError(f"input folder {input_dir} does not exist; pass --input DIR (default /input)")
    src, dst = input_dir.resolve(), output_dir.resolve()
    if dst == src or src in dst.parents:
        raise FatalError(f"output folder {output_dir} lies inside the input folder {input_dir}; choose another --output")
    try:
        check_writable(output_dir)
    except OSError as exc:
        raise FatalError(f"output folder {output_dir} is not writable ({exc}); mount it writable or pass --output DIR") from exc


def run(args: argparse.Namespace) -> int:
    from contract.manifest import ManifestError, ModelFolder
    from inference.layouts import RunOptions, detect_layout
    from inference.runner import default_threads

    started = time.perf_counter()
    _check_folders(args.input, args.output)
    model_dir, origin = resolve_model_dir(args.weights)
    log.info("model folder: %s (from %s)", model_dir, origin)
    try:
        folder = ModelFolder.open(model_dir, require_graphs=False)
    except ManifestError as exc:
        raise FatalError(str(exc)) from exc
    check_graph_files(folder)
    layout = detect_layout(args.input)
    shard = _shard(args.shard, layout.NAME)
    threads = args.threads or default_threads()
    options = RunOptions(
        input_dir=args.input, output_dir=args.output, engine=args.engine,
        device=args.device, precision=args.precision, threads=threads, batch_size=args.batch_size,
        workers=args.workers or max(2, min(4, threads)), strict=args.strict, shard=shard,
        verify_hashes=not args.no_verify_hashes, resume=args.resume, tta=args.tta,
    )
    from inference.lock import RunLock

    with RunLock(args.output, tag=shard.tag if shard is not None else None):
        summary = layout.run(options, folder)
    for line in summary.lines():
        log.info("%s", line)
    log.info("total wall time %.2f s", time.perf_counter() - started)
    if summary.outputs:
        log.info("%s", summary.outputs)
    return EXIT_ROWS_FAILED if summary.failed else EXIT_OK


def _shard(text: str | None, layout_name: str) -> "Shard | None":
    """``--shard`` (or ``$FMC_SHARD``) checked against the layout (``inference.shard``)."""
    if not text:
        return None
    from inference.shard import shard_option

    return shard_option(text, layout_name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["merge"]:  # python -m inference merge PARTS... --output OUT (inference.merge)
        from inference.merge import main as merge_main

        return merge_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="inference: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    from inference.signals import graceful_stop

    try:
        with graceful_stop():  # from the start: a SIGTERM while loading stops before the first batch
            return run(args)
    except FatalError as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    except RunInterrupted as exc:
        log.error("%s", exc)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        log.error("stopped at once (a second signal); the rows journaled so far are kept: run the same "
                  "command with --resume to finish")
        return EXIT_INTERRUPTED
