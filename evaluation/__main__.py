"""``python -m evaluation --input INPUT_DIR --predictions PRED_DIR [--metrics official|strict] [--json F]``.

``--metrics official`` (the default) gives the numbers of the challenge's own evaluate.py
(``evaluation.official``); ``--metrics strict`` the better-defined variants (``evaluation.scoring``).
Rows without a usable prediction are summarised first; they make the exit status 1 unless
``--allow-missing`` is given (``EXIT_STATUS``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from contract.atomic import atomic_write_text
from contract.tasks import TaskRegistry
from evaluation.labels import LabelLayoutError
from evaluation.official import evaluate_official
from evaluation.options import add_folder_options, resolve_folder_options
from evaluation.report import Report, format_table, plural
from evaluation.scoring import TaskSelectionError, evaluate


EXIT_OK, EXIT_MISSING, EXIT_USAGE = 0, 1, 2
EXIT_STATUS = (
    "exit status: 0 every row scored with a prediction (or --allow-missing given); 1 scored, but some rows "
    "have no usable prediction (missing or malformed: counted at the top, listed below, all in --json, which "
    "is still written); 2 bad arguments, --input not a labelled folder in the challenge layout, --predictions "
    "not a folder, or --tasks naming a task without rows."
)
OLD_NAMES = {"--labels": "input"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description=(
            "Score a run's output folder against the labelled input folder it read, with the FMC_UIA 2026 "
            "metrics (Dice/HD, AUC/F1/MCC/accuracy, IoU, MRE). Rows without a usable prediction are counted "
            "at the top of the output. --metrics official (default) follows the challenge's evaluate.py: those "
            "rows are skipped (so a missing mask can raise a task's Dice: the score covers fewer rows), AUC is "
            "0 where undefined. --metrics strict scores them as the worst case (Dice 0, HD = diagonal, IoU 0, "
            "wrong class with probability 1, points off by the image diagonal) and averages AUC over the "
            "classes present."
        ),
        epilog=EXIT_STATUS,
    )
    add_folder_options(parser, OLD_NAMES)
    parser.add_argument("--allow-missing", action="store_true",
                        help="exit 0 even when some rows have no usable prediction (they are still reported)")
    parser.add_argument("--json", type=Path, default=None, help="write the full report as JSON here")
    parser.add_argument("--metrics", choices=("official", "strict"), default="official",
                        help="official: the challenge's evaluate.py rules (default); strict: our variants")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK_ID", help="score only these task ids")
    parser.add_argument("--max-issues", type=int, default=20, help="issues printed in the table (all are in the JSON)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def write_json(report: Report, path: Path) -> None:
    """Write the report atomically (temp file in the same folder, then os.replace)."""
    atomic_write_text(path, report.model_dump_json(indent=2))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    resolve_folder_options(parser, args, OLD_NAMES)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.predictions.is_dir():
        what = "is not a folder" if args.predictions.exists() else "does not exist"
        print(f"{parser.prog}: error: --predictions {args.predictions} {what}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.metrics == "official":
            report = evaluate_official(args.input, args.predictions, tasks=args.tasks, order=TaskRegistry.official().ids)
        else:
            report = evaluate(args.input, args.predictions, tasks=args.tasks)
    except (LabelLayoutError, TaskSelectionError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(format_table(report, max_issues=args.max_issues))
    if args.json is not None:
        write_json(report, args.json)
        print(f"report written to {args.json}")
    if report.missing_predictions and not args.allow_missing:
        print(f"{parser.prog}: exit status 1: {plural(report.missing_predictions, 'row')} without a usable "
              "prediction (see the top of the report; --allow-missing accepts them)", file=sys.stderr)
        return EXIT_MISSING
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
