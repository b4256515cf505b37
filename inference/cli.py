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

from contract.defaults import DEVICES, ENGINES, PRECISIONS
from inference.errors import EXIT_FATAL, EXIT_OK, EXIT_ROWS_FAILED, FatalError

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

exit codes:
  0  every row was predicted
  1  fatal error (no model, no CSV / nothing to do, missing input, unwritable output);
     the message says what to fix
  2  usage error (bad arguments)
  3  some rows failed (named on stderr); every other row was written
"""


def _positive(text: str) -> int:
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
    parser.add_argument("--batch-size", type=_positive, default=8, help="images per model call (default: 8)")
    parser.add_argument("--threads", type=_positive, default=None,
                        help="CPU threads for the model (default: the cgroup CPU quota, else the CPU count)")
    parser.add_argument("--workers", type=_positive, default=None,
                        help="threads decoding images and writing masks (default: 2 to 4)")
    parser.add_argument("--strict", action="store_true", help="no fallback prediction for failed rows")
    parser.add_argument("--tta", choices=("auto", "none", "flip"), default="auto",
                        help="test-time augmentation: flip also runs each image's mirror and averages "
                        "(tasks whose flip rule is unsafe are never flipped); auto: what the manifest says (default)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def resolve_model_dir(weights: Path | None) -> tuple[Path, str]:
    """The model folder to use and where it came from (see EPILOG)."""
    if weights is not None:
        return weights, "--weights"
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
        folder = ModelFolder.open(model_dir)
    except ManifestError as exc:
        raise FatalError(str(exc)) from exc
    layout = detect_layout(args.input)
    threads = args.threads or default_threads()
    options = RunOptions(
        input_dir=args.input, output_dir=args.output, engine=args.engine,
        device=args.device, precision=args.precision, threads=threads, batch_size=args.batch_size,
        workers=args.workers or max(2, min(4, threads)), strict=args.strict, tta=args.tta,
    )
    summary = layout.run(options, folder)
    for line in summary.lines():
        log.info("%s", line)
    log.info("total wall time %.2f s", time.perf_counter() - started)
    return EXIT_ROWS_FAILED if summary.failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="inference: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args)
    except FatalError as exc:
        log.error("%s", exc)
        return EXIT_FATAL
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_FATAL
