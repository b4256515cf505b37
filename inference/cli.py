"""``python -m inference``: arguments, logging, model folder, layout detection, exit codes.

Only the standard library is imported before the arguments are parsed, so ``--help``
is instant; heavy modules load when (and only if) they are needed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING

from inference.errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_ROWS_FAILED, FatalError, RunInterrupted
from inference.options import add_model_arguments, positive_int

if TYPE_CHECKING:
    from inference.scale.shard import Shard

log = logging.getLogger("inference")

EPILOG = """\
model folder: --weights if given; else /opt/ml/model when it holds manifest.json (a model
tarball uploaded to Grand-Challenge); else $FMC_MODEL_DIR; else the baked-in model_weights/.

failed rows (unreadable or missing image, unknown task, bad mask path, a mask_path another
row or the run's own files already use, CSV disagreeing with the model): one ERROR line
each, naming the CSV line (both lines for two rows naming one mask), the image and the reason. The row
still gets a fallback prediction (an empty mask, uniform probabilities with class 0, the
centred box [0.25, 0.25, 0.75, 0.75], keypoints at the image centre) unless --strict.

shards: --shard I/N predicts a deterministic 1/N of the rows and writes OUTPUT/shards/part-IIII-of-NNNN.json
(zero-padded, e.g. part-0002-of-0008.json);
python -m inference merge PARTS... --output OUT joins the parts into the files one run writes
(python -m inference merge --help).

exit codes:
  0  every row was predicted
  1  fatal error (no model, no CSV / nothing to do, missing input, unwritable output,
     another run on the same output folder, --device or --precision that cannot work, a
     graph every task needs unusable); the message says what to fix. A run that cannot
     start leaves the output folder as it was
  2  usage error (bad arguments)
  3  some rows failed, or output files (each named on stderr with its reason, a full disk
     with the bytes needed); every other row was written
  4  stopped by SIGTERM/SIGINT: the current batch was finished and what is done written;
     run the same command with --resume to finish

failures and resuming (docs/failures.md): a fault of one image (unreadable, out of memory),
one graph (its file changed or damaged: checked against the manifest's sha256, and its
outputs and class counts against the manifest's) or one output file (a full disk) costs that
row, task or file only; a graph every task needs (the encoder) unusable stops the run at
start. Everything that can fail at start (input, model, device, precision) is checked
before the output folder is touched. Finished rows are journaled in OUTPUT/.fmc-journal.jsonl
with their image's size and modification time; after a kill, a stop or a crash, --resume
predicts only the rest (and rows whose image changed) and ends with the same outputs as an
uninterrupted run. Without --resume a run starts afresh (the old journal and JSON files
removed). One run per output folder at a time (OUTPUT/.fmc-run.lock, naming its holder);
the shards of one job share it.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference",
        description="Predict every row of an FMC_UIA input folder and write the files the evaluator reads.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="threads decoding images and writing masks (default: 2 to 4)")
    parser.add_argument("--shard", default=os.environ.get("FMC_SHARD") or None, metavar="I/N",
                        help="predict only shard I of N (0 <= I < N; auto/N: I from $JOB_COMPLETION_INDEX) and "
                             "write OUTPUT/shards/part-IIII-of-NNNN.json (zero-padded); join with: python -m inference merge "
                             "(default: $FMC_SHARD)")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted run in the same --output: rows its journal lists as done "
                             "are kept, the others predicted (see 'failures and resuming' below)")
    parser.add_argument("--no-verify-hashes", action="store_true",
                        help="do not check each graph file against the manifest's sha256 before its first use")
    parser.add_argument("--biometry", action="store_true",
                        help="also write OUTPUT/biometry.json: HC, BPD, OFD, AC, FL, AoP, HSD measured on the outputs "
                             "(in mm where the pixel spacing is known; docs/biometry.md); the outputs are not altered")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="{merge,ray}",
                                     description="python -m inference COMMAND --help: the options of a command")
    from inference.scale.commands import add_commands

    add_commands(commands)
    return parser


def run(args: argparse.Namespace) -> int:
    from inference.engines.host import default_threads

    started = time.perf_counter()
    threads = args.threads or default_threads()
    _prefetch_cpu_probe(args, threads)
    from inference.layouts import detect_layout
    from inference.options import RunOptions
    from inference.startup import check_folders, check_graph_files, open_model

    check_folders(args.input, args.output)
    folder = open_model(args.weights)
    if not args.no_verify_hashes and args.engine != "torch":
        from inference.engines.graph_check import start_hashes

        start_hashes(folder.path, folder.manifest)  # beside the imports still to come: no cost at cold start
    layout = detect_layout(args.input)
    check_graph_files(folder)
    shard = _shard(args.shard, layout.NAME)
    options = RunOptions(
        input_dir=args.input, output_dir=args.output, engine=args.engine,
        device=args.device, precision=args.precision, threads=threads, batch_size=args.batch_size,
        workers=args.workers or max(2, min(4, threads)), strict=args.strict, shard=shard,
        verify_hashes=not args.no_verify_hashes, resume=args.resume, tta=args.tta, biometry=args.biometry,
    )
    # the layout checks its input, starts the engine, and only then claims the output folder
    # (inference.startup.claim_output: created, probed, locked): a run that cannot start changes nothing there
    summary = layout.run(options, folder)
    for line in summary.lines():
        log.info("%s", line)
    log.info("total wall time %.2f s", time.perf_counter() - started)
    if summary.outputs:
        log.info("%s", summary.outputs)
    for line in next_steps(layout.NAME, args, shard):
        log.info("next: %s", line)
    return EXIT_ROWS_FAILED if summary.failed else EXIT_OK


def _prefetch_cpu_probe(args: argparse.Namespace, threads: int) -> None:
    """A batch run that may use a CPU variant starts its crash probe now, beside the imports (standard library
    only up to here; ``cpu_variants.prefetch_probe``). A Grand-Challenge case (one image) never uses one."""
    from inference.engines.cpu_variants import prefetch_probe
    from inference.engines.host import gpu_device_visible
    from inference.startup import resolve_model_dir

    if args.device == "cuda" or not (args.input / "csv_files").is_dir():
        return
    if args.device == "auto" and gpu_device_visible():  # a GPU will likely run it
        return
    with contextlib.suppress(FatalError):  # an unreadable uploaded model: open_model says so next
        prefetch_probe(resolve_model_dir(args.weights)[0], args.precision, threads)


def next_steps(layout_name: str, args: argparse.Namespace, shard: "Shard | None") -> list[str]:
    """The commands a team runs after a batch run: merge the shards, or evaluate and review."""
    if layout_name != "batch":
        return []
    out = shlex.quote(str(args.output))
    if shard is not None:
        return [f"once every shard is done: python -m inference merge {out} ... --output MERGED"]
    inp = shlex.quote(str(args.input))
    return [f"python -m evaluation --input {inp} --predictions {out}   (scores; needs labels in the input)",
            f"python -m review --input {inp} --predictions {out}   (an HTML page of every prediction)"]


def _shard(text: str | None, layout_name: str) -> "Shard | None":
    """``--shard`` (or ``$FMC_SHARD``) checked against the layout (``inference.scale.shard``)."""
    if not text:
        return None
    from inference.scale.shard import shard_option

    return shard_option(text, layout_name)


_PLAIN_RUN: list[bool] = []  # set by main when it ran the plain command (not merge or ray)


def finish_process(code: int) -> None:
    """End the process now with ``code`` after a plain run, skipping the interpreter's teardown.

    Freeing every module (numpy, pydantic, ONNX Runtime, OpenCV, SimpleITK) at exit costs about 50 ms,
    an eighth of a Grand-Challenge case's cold start, and does nothing for the run: every output file
    was written, closed and renamed into place before ``main`` returned, and the lock released. What
    the teardown would still do is done here: the logs flushed, a CPU variant's probe child stopped.
    After ``merge`` or ``ray`` (whose libraries may clean up at exit) this returns and the process
    ends normally. Called by ``python -m inference`` only, never by code that calls ``main``."""
    if not _PLAIN_RUN:
        return
    probe = sys.modules.get("inference.engines.openvino_probe")
    if probe is not None:
        probe.stop_pending()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is not None:  # python -m inference merge|ray ... (inference.scale.commands)
        return args.main(args)
    _PLAIN_RUN.append(True)
    if args.shard:  # a malformed --shard is a usage error (exit 2), found before any model is loaded
        from inference.scale.shard import ShardError, parse_shard

        try:
            parse_shard(args.shard)
        except ShardError as exc:
            parser.error(str(exc))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="inference: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    from inference.bookkeeping.signals import graceful_stop

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
